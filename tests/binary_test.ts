/**
 * The single-file binary: `bun build --compile` (the only compiler that works
 * offline), started with a temp config, used by MQTT.js, stopped by SIGTERM.
 * Runs under Deno too (it only needs a bun executable); skips when none is
 * found unless MQTTX_REQUIRE_INTEGRATION=1.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import type { ChildProcess } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import process from "node:process";
import mqtt from "mqtt";
import { mustRun } from "./helpers/harness.ts";
import { parsePrometheus, prometheusParserAvailable, sample } from "./helpers/ops.ts";
import { buildBinary, exited, findBun, startBinary, terminate } from "./helpers/binary.ts";
import { HELPER_NICE } from "../src/runtime/helper_threads.ts";

const bun = findBun();

test("compiled binary serves MQTT and exits 0 on SIGTERM", {
  skip: !bun && !mustRun() ? "bun not found" : false,
  // `bun build --compile` alone takes ~3 s on a quiet machine: past Bun's 5 s default under load.
  timeout: 120_000,
}, async () => {
  assert.ok(bun, "bun executable not found (MQTTX_REQUIRE_INTEGRATION=1)");
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "mqttx-bin-"));
  let child: ChildProcess | undefined;
  let client: mqtt.MqttClient | undefined;
  try {
    const binary = path.join(dir, "mqttx");
    await buildBinary(bun, binary);

    const config = path.join(dir, "mqttx.yml");
    fs.writeFileSync(
      config,
      "enable-test-mode: true\nhost: 127.0.0.1\nsocket:\n  enable: true\n  port: 0\n" +
        "http:\n  enable: true\n  port: 0\n  token: bin-token\n" +
        // A bridge to a closed port: MQTT.js must be in the binary for it to even try.
        "bridges:\n  - name: bin\n    url: mqtt://127.0.0.1:1\n    topics: [{ filter: x }]\n" +
        // node:sqlite in the binary: the store file is made beside the config.
        "store:\n  type: sqlite\n",
    );
    const running = await startBinary(binary, config);
    const { proc, port } = running;
    child = proc;
    // The HTTP endpoint starts first, so its line is out by the time the MQTT port is.
    const httpLine = running.output().match(/HTTP endpoint on http:\/\/127\.0\.0\.1:(\d+)\//);
    assert.ok(httpLine, running.output());
    const httpPort = Number(httpLine[1]);

    client = await mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, { reconnectPeriod: 0 });
    const got = new Promise<string>((resolve) =>
      client!.on("message", (topic, payload) => resolve(`${topic} ${payload}`))
    );
    await client.subscribeAsync("bin/test", { qos: 1 });
    await client.publishAsync("bin/test", "hello from the binary", { qos: 1 });
    assert.equal(await got, "bin/test hello from the binary");

    // The operations endpoint of the binary: ready, healthy, metrics that parse, the API.
    const http = `http://127.0.0.1:${httpPort}`;
    assert.equal((await fetch(`${http}/ready`)).status, 200);
    assert.equal((await fetch(`${http}/health`)).status, 200);
    const scrape = await (await fetch(`${http}/metrics`)).text();
    if (prometheusParserAvailable() || mustRun()) {
      const s = parsePrometheus(scrape);
      assert.equal(sample(s, "mqttx_messages_received_total", { qos: "1" }), 1);
      assert.equal(sample(s, "mqttx_clients_connected"), 1);
    }
    assert.equal((await fetch(`${http}/api/v1/clients`)).status, 401);
    const list = await fetch(`${http}/api/v1/clients`, {
      headers: { authorization: "Bearer bin-token" },
    });
    assert.equal((await list.json()).total, 1);
    assert.match(await (await fetch(`${http}/`)).text(), /<title>mqttx<\/title>/);
    await client.endAsync();
    client = undefined;
    for (let i = 0; i < 50 && !/bridge bin: upstream .* unreachable/.test(running.output()); i++) {
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.match(running.output(), /bridge bin: upstream mqtt:\/\/127\.0\.0\.1:1 unreachable/);
    assert.match(running.output(), /SQLite store .*mqttx\.db/);
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
      for (let i = 0; i < 30 && !(seen.length > 0 && seen.every((n) => n === HELPER_NICE)); i++) {
        await new Promise((r) => setTimeout(r, 100));
        seen = jitNice();
      }
      assert.ok(seen.length > 0, "the binary has JITWorker threads");
      assert.deepEqual(
        seen,
        seen.map(() => HELPER_NICE),
        `JITWorker threads at nice ${HELPER_NICE}`,
      );
      assert.equal(os.getPriority(proc.pid!), os.getPriority(process.pid), "event loop thread");
    }

    const code = await terminate(running, 3000);
    assert.equal(code, 0, running.output());
    await assert.rejects(fetch(`http://127.0.0.1:${httpPort}/ready`), "the endpoint is gone");
  } finally {
    if (client) await client.endAsync(true);
    if (child && child.exitCode === null && child.signalCode === null) {
      child.kill("SIGKILL");
      await exited(child);
    }
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
