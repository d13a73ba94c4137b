/**
 * The Kafka bridge in the single Bun binary (as `make compile-bun` builds it):
 * an MQTT message reaches Kafka and a Kafka record reaches an MQTT subscriber,
 * against librdkafka's mock cluster. Runs under Deno too (it needs a bun
 * executable); skips without bun or the Kafka tools unless
 * MQTTX_REQUIRE_INTEGRATION=1.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { mustRun } from "./helpers/harness.ts";
import { Clients, publish } from "./helpers/mqttjs.ts";
import { kafkaAvailable, startMockKafka } from "./helpers/kafka_mock.ts";
import { bridgeStatus } from "./helpers/kafka_bridge.ts";

const ROOT = fileURLToPath(new URL("..", import.meta.url));

function findBun(): string | undefined {
  if (!("Deno" in globalThis)) return process.execPath;
  const dirs = (process.env.PATH ?? "").split(path.delimiter);
  dirs.push(path.join(ROOT, "node_modules", ".bin"));
  return dirs.map((d) => path.join(d, "bun")).find((p) => fs.existsSync(p));
}

function exited(child: ChildProcess): Promise<number | null> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve(child.exitCode);
    else child.on("close", (code) => resolve(code));
  });
}

const bun = findBun();
const ready = !!bun && kafkaAvailable();

test("single binary: Kafka bridge both ways", {
  timeout: 120_000,
  skip: !ready && !mustRun() ? "needs bun, gcc, librdkafka-dev and kcat" : false,
}, async () => {
  assert.ok(ready, "bun, gcc + librdkafka-dev and kcat are needed");
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "mqttx-kbin-"));
  const mock = await startMockKafka(["dev.t", "commands"]);
  let child: ChildProcess | undefined;
  let url = "";
  const clients = new Clients(() => url);
  try {
    const binary = path.join(dir, "mqttx");
    const build = spawn(bun!, [
      "build",
      "--compile",
      "--bytecode",
      "--format=esm",
      path.join(ROOT, "src/main_bun.ts"),
      "--outfile",
      binary,
    ], { cwd: ROOT, stdio: ["ignore", "ignore", "pipe"] });
    let buildErr = "";
    build.stderr!.on("data", (d) => buildErr += d);
    assert.equal(await exited(build), 0, `bun build failed: ${buildErr}`);

    const config = path.join(dir, "mqttx.yml");
    fs.writeFileSync(
      config,
      `host: 127.0.0.1
socket: {enable: true, port: 0}
sys-topic: {enable: true}
message-bridge:
  enable: true
  kafka-brokers: ["${mock.bootstrap.split(",")[0]}"]
  topics: [dev/#]
  from-kafka:
    - {kafka-topic: commands, mqtt-topic: "cmd/{key}", qos: 1}
`,
    );
    const proc = spawn(binary, ["--config", config], {
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, NO_COLOR: "1" },
    });
    child = proc;
    let out = "";
    proc.stderr!.on("data", (d) => out += d);
    const exit = exited(proc);
    const port = await new Promise<number>((resolve, reject) => {
      proc.stdout!.on("data", (d) => {
        out += d;
        const m = out.match(/listening on mqtt:\/\/127\.0\.0\.1:(\d+)/);
        if (m) resolve(Number(m[1]));
      });
      exit.then(() => reject(new Error(`binary exited early: ${out}`)));
    });
    url = `mqtt://127.0.0.1:${port}`;

    const c = await clients.connect({ clientId: "bin-dev" });
    await publish(c.client, "dev/t", "from-mqtt", { qos: 1 });
    const records = await mock.waitFor("dev.t", 1);
    assert.deepEqual(records.map((r) => [r.key, r.payload]), [["bin-dev", "from-mqtt"]]);

    await c.client.subscribeAsync("cmd/#", { qos: 1 });
    await bridgeStatus(clients, (s) => s.consumer === "joined", "joined", 60_000);
    await mock.produce("commands", "bin-dev", "from-kafka");
    assert.equal((await c.inbox.payload("from-kafka", "cmd/bin-dev", 30_000)).qos, 1);
    await clients.closeAll();

    process.kill(proc.pid!, "SIGTERM");
    let timer: ReturnType<typeof setTimeout> | undefined;
    const code = await Promise.race([
      exit,
      new Promise<string>((r) => timer = setTimeout(() => r("still running after 15 s"), 15_000)),
    ]);
    clearTimeout(timer);
    assert.equal(code, 0, out);
  } finally {
    await clients.closeAll();
    if (child && child.exitCode === null && child.signalCode === null) {
      child.kill("SIGKILL");
      await exited(child);
    }
    await mock.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
