/**
 * The Kafka bridge in the single Bun binary (as `make compile-bun` builds it):
 * an MQTT message reaches Kafka and a Kafka record reaches an MQTT subscriber,
 * against librdkafka's mock cluster. Runs under Deno too (it needs a bun
 * executable); skips without bun or the Kafka tools unless
 * MQTTX_REQUIRE_INTEGRATION=1.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import type { ChildProcess } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { mustRun } from "./helpers/harness.ts";
import { buildBinary, exited, findBun, startBinary, terminate } from "./helpers/binary.ts";
import { Clients, publish } from "./helpers/mqttjs.ts";
import { kafkaAvailable, startMockKafka } from "./helpers/kafka_mock.ts";
import { bridgeStatus } from "./helpers/kafka_bridge.ts";

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
    await buildBinary(bun!, binary);

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
    const running = await startBinary(binary, config);
    child = running.proc;
    url = `mqtt://127.0.0.1:${running.port}`;

    const c = await clients.connect({ clientId: "bin-dev" });
    await publish(c.client, "dev/t", "from-mqtt", { qos: 1 });
    const records = await mock.waitFor("dev.t", 1);
    assert.deepEqual(records.map((r) => [r.key, r.payload]), [["bin-dev", "from-mqtt"]]);

    await c.client.subscribeAsync("cmd/#", { qos: 1 });
    await bridgeStatus(clients, (s) => s.consumer === "joined", "joined", 60_000);
    await mock.produce("commands", "bin-dev", "from-kafka");
    assert.equal((await c.inbox.payload("from-kafka", "cmd/bin-dev", 30_000)).qos, 1);
    await clients.closeAll();

    const code = await terminate(running, 15_000);
    assert.equal(code, 0, running.output());
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
