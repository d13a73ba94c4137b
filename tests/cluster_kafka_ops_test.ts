/**
 * The Kafka cluster bus on the operations endpoint and in `$SYS`: two nodes in
 * this process (a real redis-server, librdkafka's mock cluster). /health names
 * "cluster-kafka" while Kafka is down and is 200 again once it is back;
 * /metrics (parsed by prometheus_client) counts and buffers what goes to the
 * other node; `$SYS/broker/cluster/kafka` answers a subscriber and publishes
 * each state change.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { mustRun, testRuntime } from "./helpers/harness.ts";
import { Clients, publish, subscribe, uid } from "./helpers/mqttjs.ts";
import { kafkaAvailable, type MockKafka, startMockKafka } from "./helpers/kafka_mock.ts";
import { parsePrometheus, pollUntil as until, sample } from "./helpers/ops.ts";
import { RedisServer, redisServerAvailable } from "./helpers/redis_server.ts";
import { untilRouted } from "./helpers/cluster.ts";
import type { RunningApp } from "../src/app.ts";

const skip = !(redisServerAvailable() && kafkaAvailable()) && !mustRun()
  ? "needs redis-server, gcc, librdkafka-dev and kcat"
  : false;

const env: { redis?: RedisServer; kafka?: MockKafka; a?: RunningApp; b?: RunningApp } = {};
const onA = new Clients(() => `mqtt://127.0.0.1:${env.a!.ports.socket}`);
const onB = new Clients(() => `mqtt://127.0.0.1:${env.b!.ports.socket}`);

async function node(id: string, http: boolean): Promise<RunningApp> {
  const { defaultConfig } = await import("../src/config/schema.ts");
  const { startApp } = await import("../src/app.ts");
  const config = defaultConfig();
  config.brokerId = id;
  config.host = "127.0.0.1";
  config.socket.port = 0;
  config.enableTestMode = false;
  config.redis.url = env.redis!.url;
  config.sysTopic.enable = true;
  config.cluster = {
    ...config.cluster,
    enable: true,
    type: "kafka",
    kafkaBrokers: [env.kafka!.bootstrap],
    heartbeatInterval: 300,
    nodeTimeout: 4_000,
  };
  if (http) config.http = { ...config.http, enable: true, host: "127.0.0.1", port: 0 };
  return await startApp(await testRuntime(), config, { quiet: true });
}

before(async () => {
  if (skip) return;
  env.redis = await RedisServer.start();
  env.kafka = await startMockKafka([]);
  env.a = await node("001", true);
  env.b = await node("002", false);
});

after(async () => {
  await onA.closeAll();
  await onB.closeAll();
  await env.a?.stop();
  await env.b?.stop();
  await env.kafka?.stop();
  await env.redis?.dispose();
});

test("cluster over Kafka: /health, /metrics and $SYS show the link, down and back", {
  timeout: 180_000,
  skip,
}, async () => {
  const base = `http://127.0.0.1:${env.a!.httpPort}`;
  const metrics = async () => parsePrometheus(await (await fetch(`${base}/metrics`)).text());
  const health = async () => {
    const r = await fetch(`${base}/health`);
    return { status: r.status, body: await r.json() };
  };
  await until(async () => (await health()).status === 200, "node A reading from Kafka");
  let h = await health();
  assert.equal(h.body.checks["cluster-kafka"].ok, true, JSON.stringify(h.body));
  assert.equal(sample(await metrics(), "mqttx_cluster_kafka_up", { direction: "read" }), 1);

  const sys = await onA.connect({ clientId: `sys-${uid()}` });
  await subscribe(sys.client, "$SYS/broker/cluster/kafka");
  const first = JSON.parse((await sys.inbox.count(1, 10_000))[0].payload);
  assert.equal(first.reading, "joined");

  // Cross-node traffic: node A sends over Kafka.
  const t = `ops/${uid()}`;
  const sub = await onB.connect({ clientId: `s-${uid()}` });
  await subscribe(sub.client, t, { qos: 0 });
  const pub = await onA.connect({ clientId: `p-${uid()}` });
  await untilRouted(pub.client, sub.inbox, t, 40_000);
  const sent = sample(await metrics(), "mqttx_cluster_kafka_messages_sent_total")!;
  assert.ok(sent >= 1, `sent ${sent}`);

  await env.kafka!.down();
  await publish(pub.client, t, "while-down", { qos: 0 });
  await until(async () => (await health()).status === 503, "/health to report Kafka down");
  h = await health();
  assert.deepEqual(h.body.failing, ["cluster-kafka"], JSON.stringify(h.body));
  await until(
    async () => sample(await metrics(), "mqttx_cluster_kafka_up", { direction: "send" }) === 0,
    "sending down in /metrics",
  );
  assert.ok(sample(await metrics(), "mqttx_cluster_kafka_buffered_messages")! >= 1);
  await sys.inbox.until(
    (ms) => ms.some((m) => JSON.parse(m.payload).sending === "down"),
    "a $SYS status saying sending is down",
    30_000,
  );

  await env.kafka!.up();
  await until(async () => (await health()).status === 200, "/health back to 200");
  await sub.inbox.payload("while-down", t, 60_000);
  await until(
    async () => sample(await metrics(), "mqttx_cluster_kafka_buffered_messages") === 0,
    "the buffer empties",
  );
  await sys.inbox.until(
    (ms) => JSON.parse(ms[ms.length - 1].payload).sending === "up",
    "a $SYS status saying sending is up again",
    30_000,
  );
});
