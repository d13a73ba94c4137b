/**
 * Kafka bridge, MQTT → Kafka, end to end: MQTT.js (3.1.1 and 5.0) and
 * mosquitto_pub publish at QoS 0/1/2 on bridged and unbridged topics; the
 * records are read back from librdkafka's mock cluster with kcat. Skipped
 * without gcc/librdkafka-dev/kcat/mosquitto clients unless
 * MQTTX_REQUIRE_INTEGRATION=1 (then they fail).
 */
import { after, afterEach, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mustRun } from "./helpers/harness.ts";
import { Clients, publish, sleep } from "./helpers/mqttjs.ts";
import { hostArgs, mosquittoClientsAvailable, Procs } from "./helpers/mosquitto.ts";
import {
  kafkaAvailable,
  type KafkaRecord,
  type MockKafka,
  startMockKafka,
} from "./helpers/kafka_mock.ts";
import { type BridgeBroker, startBridge } from "./helpers/kafka_bridge.ts";

const available = kafkaAvailable() && mosquittoClientsAvailable();
const OPTS = {
  timeout: 90_000,
  skip: !available && !mustRun() ? "needs gcc, librdkafka-dev, kcat and mosquitto clients" : false,
};

/** Payloads by key, in the order Kafka holds them (records of one key share a partition). */
function byKey(records: KafkaRecord[]): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const r of records) {
    const k = r.key ?? "";
    out.set(k, [...(out.get(k) ?? []), r.payload ?? ""]);
  }
  return out;
}

describe("kafka bridge: MQTT → Kafka", OPTS, () => {
  let mock: MockKafka;
  let b: BridgeBroker;
  const clients = new Clients(() => b.url);
  const procs = new Procs();

  before(async () => {
    assert.ok(available, "gcc + librdkafka-dev, kcat and mosquitto clients are needed");
    mock = await startMockKafka([
      "bridge.a:3",
      "iot.plant.p1.t",
      "fixed-all",
      "other.a",
      "keyed:2",
    ]);
    b = await startBridge(mock.bootstrap, {
      topics: [
        { topic: "bridge/#" },
        { topic: "plant/+/t", kafkaTopic: "iot.{topic}" },
        { topic: "fixed/#", kafkaTopic: "fixed-all" },
      ],
    });
  });
  afterEach(async () => {
    await procs.killAll();
    await clients.closeAll();
  });
  after(async () => {
    await procs.killAll();
    await clients.closeAll();
    await b?.stop();
    await mock?.stop();
  });

  test("each bridged message once, in order per key, with key and headers", OPTS, async () => {
    const v5 = await clients.connect({ clientId: "dev-v5", protocolVersion: 5 });
    const v3 = await clients.connect({ clientId: "dev-v3", protocolVersion: 4 });
    const props = { userProperties: { a: "1", b: ["x", "y"] }, contentType: "text/plain" };
    // Unbridged first: once the bridged ones are all in Kafka, it would be there too.
    await publish(v3.client, "other/a", "not-bridged", { qos: 1 });
    for (let i = 0; i < 9; i++) {
      const qos = (i % 3) as 0 | 1 | 2;
      await publish(v5.client, "bridge/a", `dev-v5:${i}`, { qos, properties: props });
      await publish(v3.client, "bridge/a", `dev-v3:${i}`, { qos, retain: i === 4 });
    }
    for (let q = 0; q < 3; q++) {
      await procs.run("mosquitto_pub", [
        ...hostArgs({ host: "127.0.0.1", port: b.port }),
        ...["-i", "dev-mosq", "-t", "bridge/a", "-m", `dev-mosq:${q}`, "-q", String(q)],
        ...["-V", "5", "-D", "publish", "user-property", "k", "v"],
      ]);
    }
    await publish(v3.client, "plant/p1/t", "21.5", { qos: 1 });
    await publish(v3.client, "fixed/x/y", "f", { qos: 2 });

    const records = await mock.waitFor("bridge.a", 21);
    await sleep(1000); // anything sent twice would show up by now
    const again = await mock.read("bridge.a");
    assert.equal(again.length, 21, `exactly 21 records, got ${again.length}`);
    const keys = byKey(records);
    const seq = (id: string, n: number) => Array.from({ length: n }, (_, i) => `${id}:${i}`);
    assert.deepEqual(keys.get("dev-v5"), seq("dev-v5", 9));
    assert.deepEqual(keys.get("dev-v3"), seq("dev-v3", 9));
    assert.deepEqual(keys.get("dev-mosq"), seq("dev-mosq", 3));

    const first = records.find((r) => r.payload === "dev-v5:2")!;
    assert.deepEqual(first.headers["mqtt.topic"], ["bridge/a"]);
    assert.deepEqual(first.headers["mqtt.client-id"], ["dev-v5"]);
    assert.deepEqual(first.headers["mqtt.qos"], ["2"]);
    assert.deepEqual(first.headers["mqtt.retain"], ["false"]);
    assert.deepEqual(first.headers["mqtt.content-type"], ["text/plain"]);
    assert.deepEqual(first.headers["a"], ["1"]);
    assert.deepEqual(first.headers["b"], ["x", "y"]);
    const retained = records.find((r) => r.payload === "dev-v3:4")!;
    assert.deepEqual(retained.headers["mqtt.retain"], ["true"]);
    assert.deepEqual(retained.headers["mqtt.qos"], ["1"]);
    assert.equal(retained.headers["mqtt.content-type"], undefined);
    const mosq = records.find((r) => r.payload === "dev-mosq:1")!;
    assert.deepEqual(mosq.headers["k"], ["v"]);
    assert.deepEqual(mosq.headers["mqtt.qos"], ["1"]);

    const plant = await mock.waitFor("iot.plant.p1.t", 1);
    assert.deepEqual(plant.map((r) => [r.key, r.payload]), [["dev-v3", "21.5"]]);
    const fixed = await mock.waitFor("fixed-all", 1);
    assert.deepEqual(fixed.map((r) => r.payload), ["f"]);
    assert.deepEqual(await mock.read("other.a"), [], "an unbridged topic stays out of Kafka");
  });

  test("key: topic keys records by their MQTT topic", OPTS, async () => {
    const kb = await startBridge(mock.bootstrap, {
      topics: [{ topic: "keyed/#", kafkaTopic: "keyed" }],
      key: "topic",
    });
    const own = new Clients(() => kb.url);
    try {
      const c = await own.connect({ clientId: "dev-k", protocolVersion: 5 });
      await publish(c.client, "keyed/x", "k1", { qos: 1 });
      const records = await mock.waitFor("keyed", 1);
      assert.deepEqual(records.map((r) => [r.key, r.payload]), [["keyed/x", "k1"]]);
    } finally {
      await own.closeAll();
      await kb.stop();
    }
  });

  test("MQTT subscribers still get bridged messages", OPTS, async () => {
    const sub = await clients.connect({ clientId: "sub" });
    await sub.client.subscribeAsync("bridge/#", { qos: 1 });
    const pub = await clients.connect({ clientId: "pub-x" });
    await publish(pub.client, "bridge/b", "both", { qos: 1 });
    const got = await sub.inbox.payload("both", "bridge/b");
    assert.equal(got.qos, 1);
  });
});
