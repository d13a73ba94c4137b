/**
 * Kafka bridge, Kafka → MQTT: a record produced (with kcat) to a mapped Kafka
 * topic reaches MQTT subscribers on `mqtt-topic` with `{key}` filled in; its
 * offset is committed once routed, so a restarted broker resumes after it.
 */
import { after, afterEach, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mustRun } from "./helpers/harness.ts";
import { sleep } from "./helpers/mqttjs.ts";
import { kafkaAvailable, startMockKafka } from "./helpers/kafka_mock.ts";
import { BridgeFixture, bridgeStatus, startBridge } from "./helpers/kafka_bridge.ts";

const available = kafkaAvailable();
const OPTS = {
  timeout: 120_000,
  skip: !available && !mustRun() ? "needs gcc, librdkafka-dev and kcat" : false,
};

describe("kafka bridge: Kafka → MQTT", OPTS, () => {
  const f = new BridgeFixture();
  const clients = f.clients;
  afterEach(() => f.reset());
  after(() => clients.closeAll());

  const bridge = () =>
    startBridge(f.mock!.bootstrap, {
      groupId: "mqttx-test",
      // The outbound side also covers cmd/#: records from Kafka must not go back to Kafka.
      topics: [{ topic: "cmd/#", kafkaTopic: "commands" }],
      fromKafka: [{ kafkaTopic: "commands", mqttTopic: "cmd/{key}", qos: 1, retain: false }],
    });

  test("records reach subscribers; offsets committed after routing", OPTS, async () => {
    assert.ok(available, "gcc + librdkafka-dev and kcat are needed");
    f.mock = await startMockKafka(["commands:2"]);
    f.b = await bridge();
    const sub = await clients.connect({ clientId: "dev-sub" });
    await sub.client.subscribeAsync("cmd/#", { qos: 1 });
    await bridgeStatus(clients, (s) => s.consumer === "joined", "joined", 60_000);
    await f.mock!.produce("commands", "dev1", "on");
    const got = await sub.inbox.payload("on", "cmd/dev1", 30_000);
    assert.equal(got.qos, 1);
    await f.mock!.produce("commands", "bad/+", "nowhere"); // no valid MQTT topic: skipped, counted
    await bridgeStatus(clients, (s) => s.unroutable === 1 && s.fromKafka === 1, "1 unroutable");
    assert.equal((await f.mock!.read("commands")).length, 2, "nothing bridged back into Kafka");

    await clients.closeAll();
    await f.b!.stop();
    await f.mock!.produce("commands", "dev2", "while-down");
    f.b = await bridge();
    const sub2 = await clients.connect({ clientId: "dev-sub2" });
    await sub2.client.subscribeAsync("cmd/#", { qos: 1 });
    // A group without committed offsets would start at the end and miss this record.
    await sub2.inbox.payload("while-down", "cmd/dev2", 60_000);
    await sleep(1000);
    assert.deepEqual(sub2.inbox.messages.map((m) => m.payload), ["while-down"], "no redelivery");
  });
});
