// Retained messages [MQTT-3.3.1-5..12] and wills [MQTT-3.1.2-8..17].
import { afterEach, describe, test } from "node:test";
import assert from "node:assert/strict";
import { closeAll, newBroker, PacketClient, str, text } from "./helpers/packet_client.ts";

afterEach(closeAll);

describe("retained messages", () => {
  test("stored, sent on subscribe with RETAIN set, replaced, cleared by empty payload", async () => {
    const b = newBroker();
    const { client: p } = await PacketClient.connect(b, { clientId: "p" });
    const retained = (payload: string, packetId: number) => ({
      type: 3 as const,
      topic: "r/1",
      payload: text(payload),
      qos: 1 as const,
      retain: true,
      dup: false,
      packetId,
    });
    p.send(retained("first", 1));
    await p.expect(4);
    p.send(retained("second", 2));
    await p.expect(4);

    const { client: s } = await PacketClient.connect(b, { clientId: "s" });
    s.send({ type: 8, packetId: 1, subscriptions: [{ topicFilter: "r/#", qos: 1 }] });
    await s.expect(9);
    const m = await s.expect(3);
    assert.equal(str(m.payload), "second");
    assert.equal(m.retain, true); // [MQTT-3.3.1-8]
    assert.equal(m.qos, 1);
    s.send({ type: 4, packetId: m.packetId! });

    // A live delivery of a retained publish has RETAIN cleared [MQTT-3.3.1-9].
    p.send(retained("third", 3));
    await p.expect(4);
    const live = await s.expect(3);
    assert.equal(str(live.payload), "third");
    assert.equal(live.retain, false);
    s.send({ type: 4, packetId: live.packetId! });

    p.send(retained("", 4)); // clears [MQTT-3.3.1-10]
    await p.expect(4);
    const cleared = await s.expect(3); // still delivered as a normal message
    assert.equal(cleared.payload.length, 0);
    s.send({ type: 4, packetId: cleared.packetId! });

    const { client: late } = await PacketClient.connect(b, { clientId: "late" });
    late.send({ type: 8, packetId: 1, subscriptions: [{ topicFilter: "r/#", qos: 1 }] });
    await late.expect(9);
    await late.expectNothing(80);
  });

  test("retained QoS is downgraded to the subscription's", async () => {
    const b = newBroker();
    const { client: p } = await PacketClient.connect(b, { clientId: "p" });
    p.send({
      type: 3,
      topic: "r/q",
      payload: text("x"),
      qos: 2,
      retain: true,
      dup: false,
      packetId: 1,
    });
    await p.expect(5);
    p.send({ type: 6, packetId: 1 });
    await p.expect(7);
    const { client: s } = await PacketClient.connect(b, { clientId: "s" });
    s.send({ type: 8, packetId: 1, subscriptions: [{ topicFilter: "r/q", qos: 0 }] });
    await s.expect(9);
    const m = await s.expect(3);
    assert.equal(m.qos, 0);
    assert.equal(m.retain, true);
  });

  test("retained messages are not sent on a shared subscription", async () => {
    const b = newBroker();
    const { client: p } = await PacketClient.connect(b, { clientId: "p" });
    p.send({ type: 3, topic: "sh/1", payload: text("x"), qos: 0, retain: true, dup: false });
    const { client: s } = await PacketClient.connect(b, { clientId: "s" });
    s.send({ type: 8, packetId: 1, subscriptions: [{ topicFilter: "$share/g/sh/#", qos: 0 }] });
    await s.expect(9);
    await s.expectNothing(80);
  });
});

describe("wills", () => {
  const will = { topic: "will/t", payload: text("gone"), qos: 1 as const, retain: true };

  test("published with its QoS and retain when the connection drops", async () => {
    const b = newBroker();
    const { client: s } = await PacketClient.connect(b, { clientId: "s" });
    s.send({ type: 8, packetId: 1, subscriptions: [{ topicFilter: "will/#", qos: 1 }] });
    await s.expect(9);
    const { client: w } = await PacketClient.connect(b, { clientId: "w", will });
    w.drop();
    const m = await s.expect(3);
    assert.equal(m.topic, "will/t");
    assert.equal(str(m.payload), "gone");
    assert.equal(m.qos, 1);
    s.send({ type: 4, packetId: m.packetId! });
    // It was retained: a new subscriber gets it with RETAIN set.
    const { client: late } = await PacketClient.connect(b, { clientId: "late" });
    late.send({ type: 8, packetId: 1, subscriptions: [{ topicFilter: "will/t", qos: 1 }] });
    await late.expect(9);
    const r = await late.expect(3);
    assert.equal(r.retain, true);
  });

  test("not published after DISCONNECT [MQTT-3.1.2-10]", async () => {
    const b = newBroker();
    const { client: s } = await PacketClient.connect(b, { clientId: "s" });
    s.send({ type: 8, packetId: 1, subscriptions: [{ topicFilter: "will/#", qos: 1 }] });
    await s.expect(9);
    const { client: w } = await PacketClient.connect(b, { clientId: "w", will });
    w.send({ type: 14 });
    await w.expectClosed();
    await s.expectNothing(100);
  });

  test("published when the keep-alive expires", async () => {
    const b = newBroker();
    const { client: s } = await PacketClient.connect(b, { clientId: "s" });
    s.send({ type: 8, packetId: 1, subscriptions: [{ topicFilter: "will/#", qos: 0 }] });
    await s.expect(9);
    await PacketClient.connect(b, { clientId: "w", will, keepAlive: 1 });
    const m = await s.expect(3, 3000);
    assert.equal(str(m.payload), "gone");
  });

  test("a will topic with a wildcard is refused", async () => {
    const b = newBroker();
    const c = new PacketClient(b, 4);
    c.send({
      type: 1,
      protocolName: "MQTT",
      protocolVersion: 4,
      clean: true,
      keepAlive: 0,
      clientId: "w",
      will: { ...will, topic: "bad/#" },
    });
    // Either a refusing CONNACK or a plain close; never a session.
    await c.expectClosed();
    const ack = c.pending().find((p) => p.type === 2);
    if (ack) assert.notEqual(ack.reasonCode, 0);
    assert.equal(b.sessions.size, 0);
  });

  test("5.0 Will Delay: not sent when the session resumes in time", async () => {
    const b = newBroker();
    const { client: s } = await PacketClient.connect(b, { clientId: "s" });
    s.send({ type: 8, packetId: 1, subscriptions: [{ topicFilter: "will/#", qos: 0 }] });
    await s.expect(9);
    const delayed = { ...will, retain: false, properties: { willDelayInterval: 1 } };
    const opts = {
      clientId: "wd",
      protocolVersion: 5 as const,
      clean: false,
      will: delayed,
      properties: { sessionExpiryInterval: 60 },
    };
    const first = await PacketClient.connect(b, opts);
    first.client.drop();
    await first.client.expectClosed();
    const again = await PacketClient.connect(b, { ...opts, will: undefined });
    assert.equal(again.connack.sessionPresent, true);
    await s.expectNothing(1300);
  });

  test("5.0 Will Delay: sent after the delay when the client stays away", async () => {
    const b = newBroker();
    const { client: s } = await PacketClient.connect(b, { clientId: "s" });
    s.send({ type: 8, packetId: 1, subscriptions: [{ topicFilter: "will/#", qos: 0 }] });
    await s.expect(9);
    const { client } = await PacketClient.connect(b, {
      clientId: "wd2",
      protocolVersion: 5,
      will: { ...will, properties: { willDelayInterval: 1 } },
      properties: { sessionExpiryInterval: 60 },
    });
    client.drop();
    await s.expectNothing(500);
    const m = await s.expect(3, 2000);
    assert.equal(str(m.payload), "gone");
  });
});

test("a delayed will is sent when a Clean Start ends its session (5.0 3.1.3.2.2)", async () => {
  const b = newBroker();
  const { client: s } = await PacketClient.connect(b, { clientId: "s" });
  s.send({ type: 8, packetId: 1, subscriptions: [{ topicFilter: "will/#", qos: 0 }] });
  await s.expect(9);
  const opts = {
    clientId: "wd",
    protocolVersion: 5 as const,
    clean: false,
    will: {
      topic: "will/t",
      payload: text("gone"),
      qos: 1 as const,
      retain: false,
      properties: { willDelayInterval: 30 },
    },
    properties: { sessionExpiryInterval: 60 },
  };
  const first = await PacketClient.connect(b, opts);
  first.client.drop();
  await first.client.expectClosed();
  await PacketClient.connect(b, { ...opts, clean: true, will: undefined });
  assert.equal(str((await s.expect(3, 1000)).payload), "gone");
});
