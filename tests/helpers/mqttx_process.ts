/**
 * mqttx as a real child process (the entry of the runtime running the test:
 * deno run src/main.ts, or bun src/main_bun.ts) with a config file, for crash
 * tests: started, its MQTT port read from its log, killed with SIGKILL.
 */
import { type ChildProcess, spawn } from "node:child_process";
import * as path from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { withTimeout } from "./mqttjs.ts";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const ENTRY = "Deno" in globalThis
  ? [process.execPath, "run", "-A", path.join(ROOT, "src/main.ts")]
  : [process.execPath, path.join(ROOT, "src/main_bun.ts")];

export interface MqttxProcess {
  child: ChildProcess;
  port: number;
  url: string;
  output(): string;
  /** SIGKILL, then wait for the exit. */
  kill9(): Promise<void>;
}

export async function startMqttx(configFile: string, ms = 30_000): Promise<MqttxProcess> {
  const child = spawn(ENTRY[0], [...ENTRY.slice(1), "--config", configFile], {
    cwd: ROOT,
    env: { ...process.env, NO_COLOR: "1" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  child.stdout!.on("data", (d) => (out += d));
  child.stderr!.on("data", (d) => (out += d));
  const exited = new Promise<void>((resolve) => child.once("close", () => resolve()));
  const port = await withTimeout(
    new Promise<number>((resolve, reject) => {
      const check = () => {
        const m = out.match(/listening on mqtt:\/\/127\.0\.0\.1:(\d+)/);
        if (m) resolve(Number(m[1]));
      };
      child.stdout!.on("data", check);
      exited.then(() => reject(new Error(`mqttx exited before listening: ${out}`)));
    }),
    "mqttx to listen",
    ms,
  ).catch((e) => {
    child.kill("SIGKILL");
    throw e;
  });
  return {
    child,
    port,
    url: `mqtt://127.0.0.1:${port}`,
    output: () => out,
    async kill9() {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
      await exited;
    },
  };
}
