/**
 * Kafka bridge when Kafka fails: the mock cluster's brokers go down mid-stream
 * and come back. MQTT keeps working; with ack-after-kafka nothing acknowledged
 * is lost; past the buffer bound drops are counted exactly, in $SYS and once
 * in the logs; shutdown flushes within its limit.
 */
import { after, afterEach, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mustRun } from "./helpers/harness.ts";
import { publish, sleep, withTimeout } from "./helpers/mqttjs.ts";
import { kafkaAvailable, startMockKafka } from "./helpers/kafka_mock.ts";
import { BridgeFixture, bridgeStatus, startBridge } from "./helpers/kafka_bridge.ts";

const available = kafkaAvailable();
const OPTS = {
  timeout: 120_000,
  skip: !available && !mustRun() ? "needs gcc, librdkafka-dev and kcat" : false,
};

const count = (logs: string[], re: RegExp) => logs.filter((l) => re.test(l)).length;

describe("kafka bridge: Kafka down and back", OPTS, () => {
  const f = new BridgeFixture();
  const clients = f.clients;
  afterEach(() => f.reset());
  after(() => clients.closeAll());

  test("ack-after-kafka: held while down, nothing acknowledged lost", OPTS, async () => {
    assert.ok(available, "gcc + librdkafka-dev and kcat are needed");
    f.mock = await startMockKafka(["dev.t"]);
    f.b = await startBridge(f.mock!.bootstrap, {
      topics: [{ topic: "dev/#" }],
      ackAfterKafka: true,
    });
    const p = await clients.connect({ clientId: "pub-a", protocolVersion: 5 });
    const acked: string[] = [];
    for (let i = 0; i < 20; i++) {
      await publish(p.client, "dev/t", `m${i}`, { qos: 1 });
      acked.push(`m${i}`);
    }
    await f.mock!.down();
    const pending: Promise<void>[] = [];
    for (let i = 20; i < 30; i++) {
      const qos = i % 2 ? 2 : 1;
      pending.push(
        p.client.publishAsync("dev/t", `m${i}`, { qos }).then(() => void acked.push(`m${i}`)),
      );
    }
    // MQTT keeps working meanwhile (an unbridged topic, QoS 1 both ways).
    const s = await clients.connect({ clientId: "sub-plain" });
    await s.client.subscribeAsync("plain/x", { qos: 1 });
    const o = await clients.connect({ clientId: "pub-plain" });
    await publish(o.client, "plain/x", "still-here", { qos: 1 });
    await s.inbox.payload("still-here");
    await bridgeStatus(clients, (st) => st.producer === "down", "down");
    await sleep(1000);
    assert.equal(acked.length, 20, "no PUBACK/PUBREC while Kafka cannot take the records");

    await f.mock!.up();
    await withTimeout(Promise.all(pending), "acks after Kafka is back", 60_000);
    assert.equal(acked.length, 30);
    const records = await f.mock!.waitFor("dev.t", 30);
    const inKafka = new Set(records.map((r) => r.payload));
    const lost = acked.filter((m) => !inKafka.has(m));
    assert.deepEqual(lost, [], "every acknowledged message is in Kafka");
    assert.equal(count(f.b!.logs, /Kafka unreachable/), 1, f.b!.logs.join("\n"));
    assert.equal(count(f.b!.logs, /Kafka reachable again/), 1, f.b!.logs.join("\n"));
  });

  test("past the buffer bound: dropped and counted exactly, logged once", OPTS, async () => {
    assert.ok(available, "gcc + librdkafka-dev and kcat are needed");
    f.mock = await startMockKafka(["dev.t"]);
    f.b = await startBridge(f.mock!.bootstrap, { topics: [{ topic: "dev/#" }], bufferSize: 20 });
    const sub = await clients.connect({ clientId: "sub-all" });
    await sub.client.subscribeAsync("dev/#", { qos: 1 });
    const p = await clients.connect({ clientId: "pub-b" });
    await publish(p.client, "dev/t", "warm", { qos: 1 });
    await f.mock!.waitFor("dev.t", 1);
    await f.mock!.down();
    for (let i = 0; i < 50; i++) await publish(p.client, "dev/t", `b${i}`, { qos: 1 });
    await sub.inbox.count(51); // every MQTT subscriber still got everything
    const st = await bridgeStatus(clients, (s) => s.dropped === 30, "30 dropped");
    assert.equal(st.buffered, 20);
    assert.equal(count(f.b!.logs, /buffer full/), 1, f.b!.logs.join("\n"));

    await f.mock!.up();
    await bridgeStatus(clients, (s) => s.buffered === 0 && s.producer === "up", "drained");
    const records = await f.mock!.waitFor("dev.t", 21);
    await sleep(500);
    const payloads = (await f.mock!.read("dev.t")).map((r) => r.payload);
    assert.deepEqual(payloads, ["warm", ...Array.from({ length: 20 }, (_, i) => `b${i}`)]);
    assert.equal(records.length, 21);
    assert.equal(count(f.b!.logs, /buffer has room again \(30 dropped/), 1, f.b!.logs.join("\n"));
  });

  test("shutdown flushes the buffer; with Kafka down it gives up at its limit", OPTS, async () => {
    assert.ok(available, "gcc + librdkafka-dev and kcat are needed");
    f.mock = await startMockKafka(["dev.t"]);
    // A long linger keeps records in the buffer: only the shutdown flush sends them.
    f.b = await startBridge(f.mock!.bootstrap, {
      topics: [{ topic: "dev/#" }],
      linger: 60_000,
      batchSize: 1000,
    });
    const p = await clients.connect({ clientId: "pub-c" });
    for (let i = 0; i < 10; i++) await publish(p.client, "dev/t", `s${i}`, { qos: 1 });
    await clients.closeAll();
    await f.b!.stop();
    assert.equal((await f.mock!.read("dev.t")).length, 10);

    f.b = await startBridge(f.mock!.bootstrap, {
      topics: [{ topic: "dev/#" }],
      shutdownTimeout: 1000,
    });
    await f.mock!.down();
    const q = await clients.connect({ clientId: "pub-d" });
    for (let i = 0; i < 5; i++) await publish(q.client, "dev/t", `x${i}`, { qos: 1 });
    await clients.closeAll();
    const started = Date.now();
    await f.b!.stop();
    const took = Date.now() - started;
    assert.ok(took < 15_000, `stop took ${took} ms with a 1 s limit`);
    assert.equal(count(f.b!.logs, /5 records not sent \(lost\)/), 1, f.b!.logs.join("\n"));
  });
});
