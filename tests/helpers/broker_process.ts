/**
 * The broker as a child process (the entry of the runtime running the test:
 * `deno run src/main.ts` or `bun src/main_bun.ts`) with a config file of its
 * own, for tests that kill it (SIGKILL) and start it again.
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const BIN = path.join(ROOT, "node_modules/.bin");
const ENTRIES = {
  deno: [
    "Deno" in globalThis ? process.execPath : path.join(BIN, "deno"),
    "run",
    "-A",
    "src/main.ts",
  ],
  bun: ["Bun" in globalThis ? process.execPath : path.join(BIN, "bun"), "src/main_bun.ts"],
};
/** The runtime running the test. */
export const THIS_RUNTIME: "deno" | "bun" = "Deno" in globalThis ? "deno" : "bun";

export class BrokerProcess {
  private child: ChildProcess | undefined;
  private out = "";
  private exited: Promise<void> = Promise.resolve();
  readonly dir = fs.mkdtempSync(path.join(os.tmpdir(), "mqttx-proc-"));
  readonly config = path.join(this.dir, "mqttx.yml");

  /** `runtime`: which entry runs the broker (default: the runtime running the test). */
  constructor(yaml: string, private readonly runtime: "deno" | "bun" = THIS_RUNTIME) {
    fs.writeFileSync(this.config, yaml);
  }

  /** Everything the broker printed so far (all runs). */
  get output(): string {
    return this.out;
  }

  /** Start and wait until it listens; resolves with the MQTT port. */
  async start(timeoutMs = 30_000): Promise<number> {
    const entry = ENTRIES[this.runtime];
    const child = spawn(entry[0], [...entry.slice(1), "--config", this.config], {
      cwd: ROOT,
      env: { ...process.env, NO_COLOR: "1" },
      stdio: ["ignore", "pipe", "pipe"],
    });
    this.child = child;
    this.exited = new Promise((resolve) => child.once("exit", () => resolve()));
    const from = this.out.length;
    child.stdout!.on("data", (d) => (this.out += d));
    child.stderr!.on("data", (d) => (this.out += d));
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      const m = /listening on mqtt:\/\/[^\s]*:(\d+)/.exec(this.out.slice(from));
      if (m) return Number(m[1]);
      if (child.exitCode !== null || child.signalCode !== null) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error(`broker did not start: ${this.out.slice(from)}`);
  }

  /** Resolves with the exit code once the process has ended (for a start that must fail). */
  async exitCode(timeoutMs = 30_000): Promise<number | null> {
    const child = this.child;
    if (!child) return null;
    const deadline = Date.now() + timeoutMs;
    while (child.exitCode === null && child.signalCode === null && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 50));
    }
    return child.exitCode;
  }

  /**
   * Freeze the process (`stopped` true: SIGSTOP) or let it go on, as a stall would. Through
   * `kill(1)`: Bun's process.kill did not stop the child.
   */
  freeze(stopped: boolean): void {
    const pid = this.child?.pid;
    if (pid === undefined) throw new Error("not running");
    spawnSync("kill", [stopped ? "-STOP" : "-CONT", String(pid)]);
  }

  async kill(signal: "SIGKILL" | "SIGTERM" = "SIGKILL"): Promise<void> {
    const child = this.child;
    this.child = undefined;
    if (child && child.exitCode === null && child.signalCode === null) {
      child.kill(signal);
      await this.exited;
    }
  }

  async dispose(): Promise<void> {
    await this.kill();
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}
