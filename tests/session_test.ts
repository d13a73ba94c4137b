// Clean and persistent sessions [MQTT-3.1.2-4..7], queued QoS 1/2, resend with DUP [MQTT-4.4.0-1].
import { afterEach, describe, test } from "node:test";
import assert from "node:assert/strict";
import { closeAll, newBroker, PacketClient, str, text } from "./helpers/packet_client.ts";
import type { Broker } from "../src/broker/broker.ts";
import { encode } from "../src/mqtt/encoder.ts";

afterEach(closeAll);

async function persistent(b: Broker, id: string, filter?: string) {
  const r = await PacketClient.connect(b, { clientId: id, clean: false });
  if (filter) {
    r.client.send({ type: 8, packetId: 1, subscriptions: [{ topicFilter: filter, qos: 2 }] });
    await r.client.expect(9);
  }
  return r;
}

async function publishAll(b: Broker, topic: string, qos: 1 | 2, payloads: string[]) {
  const { client: p } = await PacketClient.connect(b, { clientId: "publisher" });
  let id = 1;
  for (const payload of payloads) {
    p.send({
      type: 3,
      topic,
      payload: text(payload),
      qos,
      retain: false,
      dup: false,
      packetId: id,
    });
    if (qos === 1) await p.expect(4);
    else {
      await p.expect(5);
      p.send({ type: 6, packetId: id });
      await p.expect(7);
    }
    id++;
  }
  p.send({ type: 14 });
}

describe("sessions", () => {
  test("persistent session keeps subscriptions and queues QoS 1/2 while offline", async () => {
    const b = newBroker();
    const first = await persistent(b, "ps", "ps/#");
    first.client.send({ type: 14 });
    await first.client.expectClosed();

    await publishAll(b, "ps/a", 1, ["one", "two"]);
    await publishAll(b, "ps/b", 2, ["three"]);
    // QoS 0 is not queued for an offline session.
    const { client: p0 } = await PacketClient.connect(b, { clientId: "p0" });
    p0.send({ type: 3, topic: "ps/c", payload: text("zero"), qos: 0, retain: false, dup: false });

    const again = await persistent(b, "ps");
    assert.equal(again.connack.sessionPresent, true); // [MQTT-3.2.2-2]
    const got: string[] = [];
    for (let i = 0; i < 3; i++) {
      const m = await again.client.expect(3);
      got.push(str(m.payload));
      if (m.qos === 1) again.client.send({ type: 4, packetId: m.packetId! });
      else {
        again.client.send({ type: 5, packetId: m.packetId! });
        await again.client.expect(6);
        again.client.send({ type: 7, packetId: m.packetId! });
      }
    }
    assert.deepEqual(got, ["one", "two", "three"]);
    await again.client.expectNothing(100);
  });

  test("a queued message owns its payload: the socket chunk it came in may be reused", async () => {
    // The broker copies a payload range out of its chunk only when the message is kept.
    const b = newBroker();
    const first = await persistent(b, "own", "own/#");
    first.client.send({ type: 14 });
    await first.client.expectClosed();
    const { client: p } = await PacketClient.connect(b, { clientId: "pub-own" });
    const chunk = encode({
      type: 3,
      topic: "own/x",
      payload: text("kept intact"),
      qos: 1,
      retain: false,
      dup: false,
      packetId: 3,
    }, 4);
    p.sendRaw(chunk);
    await p.expect(4);
    chunk.fill(0x21); // what a transport reusing its read buffer would do
    const again = await persistent(b, "own");
    const m = await again.client.expect(3);
    assert.equal(str(m.payload), "kept intact");
    assert.equal(m.topic, "own/x");
  });

  test("unacknowledged deliveries are resent with DUP on resume, PUBREL for released ones", async () => {
    const b = newBroker();
    const first = await persistent(b, "dupc", "d/#");
    await publishAll(b, "d/1", 1, ["q1"]);
    await publishAll(b, "d/2", 2, ["q2"]);
    const m1 = await first.client.expect(3);
    const m2 = await first.client.expect(3);
    assert.equal(m2.qos, 2);
    first.client.send({ type: 5, packetId: m2.packetId! }); // PUBREC, no PUBCOMP yet
    await first.client.expect(6);
    first.client.drop();
    await first.client.expectClosed();

    const again = await persistent(b, "dupc");
    const r1 = await again.client.expect(3);
    assert.equal(r1.dup, true);
    assert.equal(r1.packetId, m1.packetId);
    assert.equal(str(r1.payload), "q1");
    const rel = await again.client.expect(6);
    assert.equal(rel.packetId, m2.packetId);
    again.client.send({ type: 4, packetId: r1.packetId! });
    again.client.send({ type: 7, packetId: rel.packetId });
    await again.client.expectNothing(100);
  });

  test("QoS 2 from a resumed publisher is not delivered twice", async () => {
    const b = newBroker();
    const { client: s } = await PacketClient.connect(b, { clientId: "s" });
    s.send({ type: 8, packetId: 1, subscriptions: [{ topicFilter: "x2", qos: 2 }] });
    await s.expect(9);
    const p1 = await persistent(b, "p2");
    const msg = { type: 3 as const, topic: "x2", payload: text("once"), qos: 2 as const };
    p1.client.send({ ...msg, retain: false, dup: false, packetId: 42 });
    await p1.client.expect(5);
    p1.client.drop();
    await p1.client.expectClosed();
    const p2 = await persistent(b, "p2");
    assert.equal(p2.connack.sessionPresent, true);
    p2.client.send({ ...msg, retain: false, dup: true, packetId: 42 });
    await p2.client.expect(5);
    p2.client.send({ type: 6, packetId: 42 });
    await p2.client.expect(7);
    const m = await s.expect(3);
    assert.equal(str(m.payload), "once");
    s.send({ type: 5, packetId: m.packetId! });
    await s.expect(6);
    s.send({ type: 7, packetId: m.packetId! });
    await s.expectNothing(100);
  });

  test("clean session discards the stored session [MQTT-3.1.2-6]", async () => {
    const b = newBroker();
    const first = await persistent(b, "cs", "cs/#");
    first.client.send({ type: 14 });
    await first.client.expectClosed();
    await publishAll(b, "cs/a", 1, ["lost"]);
    const clean = await PacketClient.connect(b, { clientId: "cs", clean: true });
    assert.equal(clean.connack.sessionPresent, false);
    await clean.client.expectNothing(100);
    clean.client.send({ type: 14 });
    await clean.client.expectClosed();
    const later = await persistent(b, "cs");
    assert.equal(later.connack.sessionPresent, false);
  });

  test("a clean session ends with its connection", async () => {
    const b = newBroker();
    const { client } = await PacketClient.connect(b, { clientId: "tmp", clean: true });
    client.send({ type: 8, packetId: 1, subscriptions: [{ topicFilter: "t", qos: 1 }] });
    await client.expect(9);
    client.send({ type: 14 });
    await client.expectClosed();
    assert.equal(b.sessions.has("tmp"), false);
    assert.equal(b.router.index.size, 0);
  });

  test("the offline queue is bounded by max-queued-messages", async () => {
    const b = newBroker({ maxQueuedMessages: 2 });
    const first = await persistent(b, "bq", "bq");
    first.client.send({ type: 14 });
    await first.client.expectClosed();
    await publishAll(b, "bq", 1, ["1", "2", "3", "4"]);
    const again = await persistent(b, "bq");
    const a = await again.client.expect(3);
    const c = await again.client.expect(3);
    assert.deepEqual([str(a.payload), str(c.payload)], ["1", "2"]);
    await again.client.expectNothing(100);
    assert.equal(b.sessions.get("bq")!.dropped, 2);
  });

  test("5.0 session expiry 0 ends the session at disconnect; >0 keeps it", async () => {
    const b = newBroker();
    const a = await PacketClient.connect(b, {
      clientId: "e0",
      protocolVersion: 5,
      clean: false,
    });
    a.client.send({ type: 14 });
    await a.client.expectClosed();
    const a2 = await PacketClient.connect(b, { clientId: "e0", protocolVersion: 5, clean: false });
    assert.equal(a2.connack.sessionPresent, false);

    const k = await PacketClient.connect(b, {
      clientId: "e60",
      protocolVersion: 5,
      clean: false,
      properties: { sessionExpiryInterval: 60 },
    });
    k.client.send({ type: 14 });
    await k.client.expectClosed();
    const k2 = await PacketClient.connect(b, { clientId: "e60", protocolVersion: 5, clean: false });
    assert.equal(k2.connack.sessionPresent, true);
  });
});

test("a session expiry past 24.8 days (beyond a setTimeout) survives a disconnect", async () => {
  const b = newBroker();
  const opts = {
    clientId: "long",
    protocolVersion: 5 as const,
    clean: false,
    properties: { sessionExpiryInterval: 30 * 86400 },
  };
  const first = await PacketClient.connect(b, opts);
  first.client.drop();
  await first.client.expectClosed();
  await new Promise((r) => setTimeout(r, 50));
  const again = await PacketClient.connect(b, opts);
  assert.equal(again.connack.sessionPresent, true);
});

describe("a clean session taken over by a persistent CONNECT", () => {
  for (const version of [3, 4, 5] as const) {
    test(`MQTT ${version}: ends with its connection, nothing resumed [MQTT-3.1.2-6]`, async () => {
      const b = newBroker();
      const { client: a } = await PacketClient.connect(b, {
        clientId: "same",
        protocolVersion: version,
        protocolName: version === 3 ? "MQIsdp" : "MQTT",
        clean: true,
      });
      a.send({ type: 8, packetId: 1, subscriptions: [{ topicFilter: "T/x", qos: 1 }] });
      await a.expect(9);
      const { client: bClient, connack } = await PacketClient.connect(b, {
        clientId: "same",
        protocolVersion: version,
        protocolName: version === 3 ? "MQIsdp" : "MQTT",
        clean: false,
        properties: version === 5 ? { sessionExpiryInterval: 60 } : undefined,
      });
      assert.equal(
        connack.sessionPresent,
        false,
        "its session ended with the taken-over connection",
      );
      const { client: p } = await PacketClient.connect(b, { clientId: "pub" });
      p.send({
        type: 3,
        topic: "T/x",
        payload: text("m"),
        qos: 1,
        retain: false,
        dup: false,
        packetId: 1,
      });
      await p.expect(4);
      await bClient.expectNothing(150); // no subscription came with it
    });
  }
});
