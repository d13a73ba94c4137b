// PUBLISH flows at QoS 0/1/2 in both directions, matching, downgrade, overlap, order.
import { afterEach, describe, test } from "node:test";
import assert from "node:assert/strict";
import type { QoS } from "../src/mqtt/packet.ts";
import { closeAll, newBroker, PacketClient, str, text } from "./helpers/packet_client.ts";
import type { Broker } from "../src/broker/broker.ts";

afterEach(closeAll);

async function subscriber(b: Broker, filter: string, qos: QoS, id = "sub") {
  const { client } = await PacketClient.connect(b, { clientId: id });
  client.send({ type: 8, packetId: 1, subscriptions: [{ topicFilter: filter, qos }] });
  const ack = await client.expect(9);
  assert.deepEqual(ack.reasonCodes, [qos]);
  return client;
}

function pub(topic: string, payload: string, qos: QoS, packetId?: number) {
  return {
    type: 3 as const,
    topic,
    payload: text(payload),
    qos,
    retain: false,
    dup: false,
    packetId,
  };
}

describe("publish / subscribe", () => {
  test("QoS 0 is delivered at QoS 0", async () => {
    const b = newBroker();
    const s = await subscriber(b, "a/b", 0);
    const { client: p } = await PacketClient.connect(b, { clientId: "pub" });
    p.send(pub("a/b", "hello", 0));
    const m = await s.expect(3);
    assert.equal(m.topic, "a/b");
    assert.equal(str(m.payload), "hello");
    assert.equal(m.qos, 0);
    assert.equal(m.retain, false);
  });

  test("QoS 1: PUBACK to the publisher, PUBLISH with packet id to the subscriber", async () => {
    const b = newBroker();
    const s = await subscriber(b, "q1", 1);
    const { client: p } = await PacketClient.connect(b, { clientId: "pub" });
    p.send(pub("q1", "x", 1, 7));
    const ack = await p.expect(4);
    assert.equal(ack.packetId, 7);
    const m = await s.expect(3);
    assert.equal(m.qos, 1);
    assert.ok(m.packetId! > 0);
    s.send({ type: 4, packetId: m.packetId! });
    await s.expectNothing(50);
  });

  test("QoS 2: PUBREC/PUBREL/PUBCOMP both ways, delivered exactly once", async () => {
    const b = newBroker();
    const s = await subscriber(b, "q2", 2);
    const { client: p } = await PacketClient.connect(b, { clientId: "pub" });
    p.send(pub("q2", "once", 2, 9));
    assert.equal((await p.expect(5)).packetId, 9);
    // A resend of the same packet id before PUBREL must not be routed again [MQTT-4.3.3-2].
    p.send({ ...pub("q2", "once", 2, 9), dup: true });
    assert.equal((await p.expect(5)).packetId, 9);
    p.send({ type: 6, packetId: 9 });
    assert.equal((await p.expect(7)).packetId, 9);

    const m = await s.expect(3);
    assert.equal(m.qos, 2);
    s.send({ type: 5, packetId: m.packetId! });
    assert.equal((await s.expect(6)).packetId, m.packetId);
    s.send({ type: 7, packetId: m.packetId! });
    await s.expectNothing(80);
  });

  test("QoS is downgraded to the subscription's [MQTT-3.8.4-6]", async () => {
    const b = newBroker();
    const s = await subscriber(b, "d", 0);
    const { client: p } = await PacketClient.connect(b, { clientId: "pub" });
    p.send(pub("d", "x", 2, 1));
    await p.expect(5);
    assert.equal((await s.expect(3)).qos, 0);
  });

  test("overlapping subscriptions deliver once at the highest QoS", async () => {
    const b = newBroker();
    const { client: s } = await PacketClient.connect(b, { clientId: "s" });
    s.send({
      type: 8,
      packetId: 1,
      subscriptions: [{ topicFilter: "a/#", qos: 0 }, { topicFilter: "a/+", qos: 1 }],
    });
    assert.deepEqual((await s.expect(9)).reasonCodes, [0, 1]);
    const { client: p } = await PacketClient.connect(b, { clientId: "pub" });
    p.send(pub("a/x", "x", 1, 1));
    const m = await s.expect(3);
    assert.equal(m.qos, 1);
    await s.expectNothing(80);
  });

  test("wildcards: + and # match; $ topics are not matched by a leading wildcard", async () => {
    const b = newBroker();
    const hash = await subscriber(b, "#", 0, "hash");
    const plus = await subscriber(b, "+/x", 0, "plus");
    const sys = await subscriber(b, "$SYS/x", 0, "sys");
    const { client: p } = await PacketClient.connect(b, { clientId: "pub" });
    p.send(pub("$SYS/x", "s", 0));
    p.send(pub("a/x", "a", 0));
    assert.equal((await sys.expect(3)).topic, "$SYS/x");
    assert.equal((await hash.expect(3)).topic, "a/x");
    assert.equal((await plus.expect(3)).topic, "a/x");
    await hash.expectNothing(50);
    await plus.expectNothing(10);
  });

  test("order is kept per topic, QoS 1, 300 messages", async () => {
    const b = newBroker({ maxInflight: 10 });
    const s = await subscriber(b, "o", 1);
    const { client: p } = await PacketClient.connect(b, { clientId: "pub" });
    for (let i = 1; i <= 300; i++) p.send(pub("o", String(i), 1, i));
    for (let i = 1; i <= 300; i++) {
      const m = await s.expect(3);
      assert.equal(str(m.payload), String(i));
      s.send({ type: 4, packetId: m.packetId! });
    }
  });

  test("inflight window: no more than max-inflight unacknowledged QoS 1 sends", async () => {
    const b = newBroker({ maxInflight: 3 });
    const s = await subscriber(b, "w", 1);
    const { client: p } = await PacketClient.connect(b, { clientId: "pub" });
    for (let i = 1; i <= 5; i++) p.send(pub("w", String(i), 1, i));
    const got = [await s.expect(3), await s.expect(3), await s.expect(3)];
    await s.expectNothing(80);
    s.send({ type: 4, packetId: got[0].packetId! });
    assert.equal(str((await s.expect(3)).payload), "4");
  });

  test("UNSUBSCRIBE stops delivery and answers UNSUBACK", async () => {
    const b = newBroker();
    const s = await subscriber(b, "u", 0);
    s.send({ type: 10, packetId: 5, topicFilters: ["u"] });
    assert.equal((await s.expect(11)).packetId, 5);
    const { client: p } = await PacketClient.connect(b, { clientId: "pub" });
    p.send(pub("u", "x", 0));
    await s.expectNothing(80);
  });

  test("a topic routed before sees later SUBSCRIBE, UNSUBSCRIBE and session end", async () => {
    // Routing remembers the matches of recent topics: every change must show at once.
    const b = newBroker();
    const a = await subscriber(b, "c/1", 0, "a");
    const { client: p } = await PacketClient.connect(b, { clientId: "pub", protocolVersion: 5 });
    p.send(pub("c/1", "1", 0));
    assert.equal(str((await a.expect(3)).payload), "1");
    const plus = await subscriber(b, "c/+", 0, "plus");
    p.send(pub("c/1", "2", 0));
    assert.equal(str((await a.expect(3)).payload), "2");
    assert.equal(str((await plus.expect(3)).payload), "2");
    a.send({ type: 10, packetId: 2, topicFilters: ["c/1"] });
    await a.expect(11);
    p.send(pub("c/1", "3", 0));
    assert.equal(str((await plus.expect(3)).payload), "3");
    await a.expectNothing(50);
    plus.send({ type: 14 }); // clean session: its subscription goes with it
    await plus.expectClosed();
    p.send(pub("c/1", "4", 1, 9));
    const ack = await p.expect(4);
    assert.equal(ack.reasonCode, 0x10); // No matching subscribers
    await a.expectNothing(30);
  });

  test("invalid topic filter gets 0x80 for that filter only", async () => {
    const b = newBroker();
    const { client } = await PacketClient.connect(b, { clientId: "s" });
    client.send({
      type: 8,
      packetId: 2,
      subscriptions: [{ topicFilter: "a/#/b", qos: 1 }, { topicFilter: "ok", qos: 1 }],
    });
    assert.deepEqual((await client.expect(9)).reasonCodes, [0x80, 1]);
  });

  test("a client receives its own messages unless ignore-client-self-pub", async () => {
    const b = newBroker();
    const self = await subscriber(b, "me", 0, "me");
    self.send(pub("me", "echo", 0));
    assert.equal(str((await self.expect(3)).payload), "echo");
    const b2 = newBroker({ ignoreClientSelfPub: true });
    const quiet = await subscriber(b2, "me", 0, "me");
    quiet.send(pub("me", "echo", 0));
    await quiet.expectNothing(80);
  });

  test("3.1.1 and 5.0 clients interoperate", async () => {
    const b = newBroker();
    const { client: v5 } = await PacketClient.connect(b, { clientId: "v5", protocolVersion: 5 });
    v5.send({ type: 8, packetId: 1, subscriptions: [{ topicFilter: "mix/#", qos: 1 }] });
    await v5.expect(9);
    const v4 = await subscriber(b, "mix/#", 1, "v4");
    v4.send(pub("mix/a", "from4", 1, 1));
    // v4 gets its PUBACK and its own copy (it subscribed too), in either order.
    const mine = [await v4.next(), await v4.next()].sort((x, y) => x.type - y.type);
    assert.deepEqual(mine.map((p) => p.type), [3, 4]);
    assert.equal(str((await v5.expect(3)).payload), "from4");
    v5.send({
      ...pub("mix/b", "from5", 1, 2),
      properties: { userProperties: [["k", "v"]] },
    });
    const own = [await v5.next(), await v5.next()].sort((x, y) => x.type - y.type);
    assert.deepEqual(own.map((p) => p.type), [3, 4]);
    const m4 = await v4.expect(3);
    assert.equal(str(m4.payload), "from5");
  });
});
