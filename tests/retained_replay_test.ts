// Every matching retained message is delivered on SUBSCRIBE, streamed through the session's flow
// control with memory bounded, however many there are (issue 14.2).
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { newBroker, PacketClient, str, text } from "./helpers/packet_client.ts";
import type { Broker } from "../src/broker/broker.ts";
import { brokerPerTest, startBroker } from "./helpers/harness.ts";
import { subscribe } from "./helpers/mqttjs.ts";
import type { QoS } from "../src/mqtt/packet.ts";

const TIMEOUT = { timeout: 120_000 };

const app = brokerPerTest();
const clients = app.clients;

/**
 * `count` retained messages q/0 .. q/{count-1}, stored through the broker's own publish path;
 * payload "{i}" padded to `size` bytes.
 */
async function retain(b: Broker, count: number, qos: QoS, size = 0): Promise<void> {
  for (let i = 0; i < count; i++) {
    await b.publish({
      topic: `q/${i}`,
      payload: text(String(i).padEnd(size, ".")),
      owned: true,
      qos,
      retain: true,
      from: "setup",
      internal: true,
    });
  }
}

describe("retained messages on SUBSCRIBE", () => {
  test("QoS 1: all 5,000 arrive through the inflight window, none queued or dropped", async () => {
    const b = newBroker({ maxInflight: 20, maxQueuedMessages: 100 });
    await retain(b, 5000, 1);
    const { client: s } = await PacketClient.connect(b, { clientId: "s", clean: true });
    s.send({ type: 8, packetId: 1, subscriptions: [{ topicFilter: "q/#", qos: 1 }] });
    await s.expect(9);
    const session = b.sessions.get("s")!;
    const seen = new Set<string>();
    // Without acknowledgements only the window is sent, and nothing piles up in the queue.
    for (let i = 0; i < 20; i++) {
      const m = await s.expect(3);
      assert.equal(m.retain, true); // [MQTT-3.3.1-8]
      seen.add(str(m.payload));
    }
    await s.expectNothing(50);
    assert.equal(session.queue.length, 0);
    assert.equal(session.inflight.size, 20);
    // Acknowledge those, then each one as it comes: the rest streams in.
    for (const [id] of [...session.inflight]) s.send({ type: 4, packetId: id });
    while (seen.size < 5000) {
      const m = await s.expect(3);
      seen.add(str(m.payload));
      s.send({ type: 4, packetId: m.packetId! });
    }
    await s.expectNothing(50);
    assert.equal(seen.size, 5000);
    assert.equal(b.stats.dropped.queueFull, 0);
    assert.equal(session.replay, undefined); // finished: nothing held
  });

  test("an UNSUBSCRIBE stops the replay [MQTT-3.10.4-2]", async () => {
    const b = newBroker({ maxInflight: 5 });
    await retain(b, 100, 1);
    const { client: s } = await PacketClient.connect(b, { clientId: "u" });
    s.send({ type: 8, packetId: 1, subscriptions: [{ topicFilter: "q/#", qos: 1 }] });
    await s.expect(9);
    const got: number[] = [];
    for (let i = 0; i < 5; i++) got.push((await s.expect(3)).packetId!);
    s.send({ type: 10, packetId: 2, topicFilters: ["q/#"] });
    await s.expect(11);
    for (const id of got) s.send({ type: 4, packetId: id });
    await s.expectNothing(100);
  });

  test("MQTT.js, QoS 1: 5,000 retained, every one delivered exactly once", TIMEOUT, async () => {
    const broker = app.broker = await startBroker();
    if (broker.external) return;
    await retain(broker.core!, 5000, 1);
    const c = await clients.connect({ clientId: "r1", protocolVersion: 4 });
    await subscribe(c.client, "q/#", { qos: 1 });
    await c.inbox.count(5000, 60_000);
    const topics = new Set(c.inbox.messages.map((m) => m.topic));
    assert.equal(c.inbox.messages.length, 5000);
    assert.equal(topics.size, 5000);
    assert.ok(c.inbox.messages.every((m) => m.retain && m.qos === 1));
  });

  test(
    "MQTT.js, QoS 0: 100,000 retained (10 MB) to a fast reader, every one delivered",
    TIMEOUT,
    async () => {
      const broker = app.broker = await startBroker();
      if (broker.external) return;
      // More than the 4 MiB of unsent output past which QoS 0 to a client is dropped.
      await retain(broker.core!, 100_000, 0, 100);
      const c = await clients.connect({ clientId: "r0", protocolVersion: 4 });
      await subscribe(c.client, "q/#", { qos: 0 });
      await c.inbox.count(100_000, 90_000);
      assert.equal(c.inbox.messages.length, 100_000);
      assert.equal(new Set(c.inbox.messages.map((m) => m.payload)).size, 100_000);
      assert.equal(broker.core!.stats.dropped.queueFull, 0);
    },
  );
});
