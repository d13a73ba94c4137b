/**
 * The single-file binary: `bun build --compile` (the only compiler that works
 * offline), started with a temp config, used by MQTT.js, stopped by SIGTERM.
 * Runs under Deno too (it only needs a bun executable); skips when none is
 * found unless MQTTX_REQUIRE_INTEGRATION=1.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";
import mqtt from "mqtt";
import { mustRun } from "./helpers/harness.ts";

const ROOT = fileURLToPath(new URL("..", import.meta.url));

function findBun(): string | undefined {
  if (!("Deno" in globalThis)) return process.execPath;
  const dirs = (process.env.PATH ?? "").split(path.delimiter);
  dirs.push(path.join(ROOT, "node_modules", ".bin"));
  for (const d of dirs) {
    const p = path.join(d, "bun");
    if (d && fs.existsSync(p)) return p;
  }
  return undefined;
}

function exited(child: ChildProcess): Promise<number | null> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve(child.exitCode);
    else child.on("close", (code) => resolve(code));
  });
}

const bun = findBun();

test("compiled binary serves MQTT and exits 0 on SIGTERM", {
  skip: !bun && !mustRun() ? "bun not found" : false,
}, async () => {
  assert.ok(bun, "bun executable not found (MQTTX_REQUIRE_INTEGRATION=1)");
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "mqttx-bin-"));
  let child: ChildProcess | undefined;
  let client: mqtt.MqttClient | undefined;
  try {
    const binary = path.join(dir, "mqttx");
    const build = spawn(bun, [
      "build",
      "--compile",
      // As `make compile-bun` builds it: the binary we ship is the one tested.
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
      "enable-test-mode: true\nhost: 127.0.0.1\nsocket:\n  enable: true\n  port: 0\n" +
        // A bridge to a closed port: MQTT.js must be in the binary for it to even try.
        "bridges:\n  - name: bin\n    url: mqtt://127.0.0.1:1\n    topics: [{ filter: x }]\n" +
        // node:sqlite in the binary: the store file is made beside the config.
        "store:\n  type: sqlite\n",
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

    client = await mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, { reconnectPeriod: 0 });
    const got = new Promise<string>((resolve) =>
      client!.on("message", (topic, payload) => resolve(`${topic} ${payload}`))
    );
    await client.subscribeAsync("bin/test", { qos: 1 });
    await client.publishAsync("bin/test", "hello from the binary", { qos: 1 });
    assert.equal(await got, "bin/test hello from the binary");
    await client.endAsync();
    client = undefined;
    for (let i = 0; i < 50 && !/bridge bin: upstream .* unreachable/.test(out); i++) {
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.match(out, /bridge bin: upstream mqtt:\/\/127\.0\.0\.1:1 unreachable/);
    assert.match(out, /SQLite store .*mqttx\.db/);
    assert.ok(fs.existsSync(path.join(dir, "mqttx.db")), "the SQLite file beside the config");

    if (process.platform === "linux") {
      // The JIT compiler threads yield to the event loop (src/runtime/helper_threads.ts);
      // one started since the last sweep is lowered by the next, a second later.
      const jitNice = () =>
        fs.readdirSync(`/proc/${proc.pid}/task`)
          .filter((id) =>
            fs.readFileSync(`/proc/${proc.pid}/task/${id}/comm`, "utf8").trimEnd() === "JITWorker"
          )
          .map((id) => os.getPriority(Number(id)));
      let seen = jitNice();
      for (let i = 0; i < 30 && !(seen.length > 0 && seen.every((n) => n === 10)); i++) {
        await new Promise((r) => setTimeout(r, 100));
        seen = jitNice();
      }
      assert.ok(seen.length > 0, "the binary has JITWorker threads");
      assert.deepEqual(seen, seen.map(() => 10), "JITWorker threads at nice 10");
      assert.equal(os.getPriority(proc.pid!), os.getPriority(process.pid), "event loop thread");
    }

    // Not proc.kill(): Deno's node:child_process then reports the signal, not the exit code.
    process.kill(proc.pid!, "SIGTERM");
    let timer: ReturnType<typeof setTimeout> | undefined;
    const code = await Promise.race([
      exit,
      new Promise<string>((r) => timer = setTimeout(() => r("still running after 3 s"), 3000)),
    ]);
    clearTimeout(timer);
    assert.equal(code, 0, out);
  } finally {
    if (client) await client.endAsync(true);
    if (child && child.exitCode === null && child.signalCode === null) {
      child.kill("SIGKILL");
      await exited(child);
    }
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
