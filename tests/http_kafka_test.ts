/**
 * The Kafka bridge on the operations endpoint: /health names "kafka-bridge"
 * while Kafka is down and is 200 again once it is back; /metrics carries the
 * bridge's figures (parsed by prometheus_client). Against librdkafka's mock
 * cluster.
 */
import { afterEach, test } from "node:test";
import assert from "node:assert/strict";
import { mustRun, testRuntime } from "./helpers/harness.ts";
import { Clients, publish } from "./helpers/mqttjs.ts";
import { kafkaAvailable, type MockKafka, startMockKafka } from "./helpers/kafka_mock.ts";
import { parsePrometheus, pollUntil as until, sample } from "./helpers/ops.ts";
import type { RunningApp } from "../src/app.ts";

const available = kafkaAvailable();
const OPTS = {
  timeout: 120_000,
  skip: !available && !mustRun() ? "needs gcc, librdkafka-dev and kcat" : false,
};

let mock: MockKafka | undefined;
let app: RunningApp | undefined;
const clients = new Clients(() => `mqtt://127.0.0.1:${app!.ports.socket}`);

afterEach(async () => {
  await clients.closeAll();
  await app?.stop();
  await mock?.stop();
  app = mock = undefined;
});

test(
  "kafka bridge: /health 503 naming it while Kafka is down, metrics count records",
  OPTS,
  async () => {
    assert.ok(available, "gcc + librdkafka-dev and kcat are needed");
    mock = await startMockKafka(["ops.t"]);
    const { defaultConfig } = await import("../src/config/schema.ts");
    const { startApp } = await import("../src/app.ts");
    const config = defaultConfig();
    config.host = "127.0.0.1";
    config.socket.port = 0;
    config.http = { enable: true, host: "127.0.0.1", port: 0 };
    config.messageBridge = {
      ...config.messageBridge,
      enable: true,
      kafkaBrokers: [mock.bootstrap],
      topics: [{ topic: "ops/#" }],
    };
    app = await startApp(await testRuntime(), config, { quiet: true });
    const base = `http://127.0.0.1:${app.httpPort}`;
    const metrics = async () => parsePrometheus(await (await fetch(`${base}/metrics`)).text());
    const health = async () => {
      const r = await fetch(`${base}/health`);
      return { status: r.status, body: await r.json() };
    };

    const pub = await clients.connect({ clientId: "ops-pub" });
    await publish(pub.client, "ops/t", "one", { qos: 1 });
    await until(
      async () => sample(await metrics(), "mqttx_kafka_bridge_records_sent_total") === 1,
      "the record reaches Kafka",
    );
    let h = await health();
    assert.equal(h.status, 200, JSON.stringify(h.body));
    assert.equal(h.body.checks["kafka-bridge"].ok, true);
    assert.equal(sample(await metrics(), "mqttx_kafka_bridge_up", { direction: "to_kafka" }), 1);

    await mock.down();
    await publish(pub.client, "ops/t", "two", { qos: 1 });
    await until(async () => (await health()).status === 503, "/health to report Kafka down");
    h = await health();
    assert.deepEqual(h.body.failing, ["kafka-bridge"]);
    assert.match(h.body.checks["kafka-bridge"].detail, /producer down, 1 records buffered/);
    const down = await metrics();
    assert.equal(sample(down, "mqttx_kafka_bridge_up", { direction: "to_kafka" }), 0);
    assert.equal(sample(down, "mqttx_kafka_bridge_buffered_records"), 1);

    await mock.up();
    await until(async () => (await health()).status === 200, "/health back to 200");
    assert.equal(sample(await metrics(), "mqttx_kafka_bridge_records_sent_total"), 2);
  },
);
