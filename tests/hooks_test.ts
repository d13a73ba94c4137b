// The extension points: authenticate, authorize publish/subscribe, notifications.
import { afterEach, describe, test } from "node:test";
import assert from "node:assert/strict";
import { closeAll, newBroker, PacketClient, text } from "./helpers/packet_client.ts";
import type { BrokerHooks } from "../src/broker/hooks.ts";

afterEach(closeAll);

const denyBob: BrokerHooks = {
  authenticate: (c) =>
    c.username === "bob" ? { ok: false, reasonCode: 0x86, reasonString: "no bob" } : undefined,
};

describe("hooks", () => {
  test("a refusing authenticate hook: 3.1.1 gets return code 4, 5.0 gets 0x86", async () => {
    const b = newBroker({ hooks: [denyBob] });
    for (const [version, code] of [[4, 0x04], [5, 0x86]] as const) {
      const c = new PacketClient(b, version);
      c.send({
        type: 1,
        protocolName: "MQTT",
        protocolVersion: version,
        clean: true,
        keepAlive: 0,
        clientId: "x" + version,
        username: "bob",
        password: text("pw"),
      });
      assert.equal((await c.expect(2)).reasonCode, code);
      await c.expectClosed();
    }
    assert.equal(b.connectedCount, 0);
  });

  test("an async hook may accept; the first hook with an opinion decides", async () => {
    const calls: string[] = [];
    const b = newBroker({
      hooks: [
        { authenticate: () => (calls.push("a"), Promise.resolve(undefined)) },
        { authenticate: () => (calls.push("b"), Promise.resolve({ ok: true as const })) },
        { authenticate: () => (calls.push("c"), { ok: false as const, reasonCode: 0x87 }) },
      ],
    });
    const { connack } = await PacketClient.connect(b, { clientId: "ok" });
    assert.equal(connack.reasonCode, 0);
    assert.deepEqual(calls, ["a", "b"]);
  });

  test("a denied publish is dropped and acknowledged; 5.0 says 0x87", async () => {
    const b = newBroker({
      hooks: [{ authorizePublish: (_c, topic) => !topic.startsWith("secret") }],
    });
    const { client: s } = await PacketClient.connect(b, { clientId: "s" });
    s.send({ type: 8, packetId: 1, subscriptions: [{ topicFilter: "#", qos: 1 }] });
    await s.expect(9);
    const { client: p4 } = await PacketClient.connect(b, { clientId: "p4" });
    p4.send({
      type: 3,
      topic: "secret/x",
      payload: text("1"),
      qos: 1,
      retain: false,
      dup: false,
      packetId: 1,
    });
    assert.equal((await p4.expect(4)).reasonCode ?? 0, 0);
    const { client: p5 } = await PacketClient.connect(b, { clientId: "p5", protocolVersion: 5 });
    p5.send({
      type: 3,
      topic: "secret/y",
      payload: text("2"),
      qos: 1,
      retain: false,
      dup: false,
      packetId: 1,
    });
    assert.equal((await p5.expect(4)).reasonCode, 0x87);
    await s.expectNothing(80);
    assert.equal(p5.closed, false);
  });

  test("a denied subscribe gets 0x80 (5.0: 0x87) for that filter only", async () => {
    const b = newBroker({ hooks: [{ authorizeSubscribe: (_c, f) => f !== "no" }] });
    const { client } = await PacketClient.connect(b, { clientId: "s", protocolVersion: 5 });
    client.send({
      type: 8,
      packetId: 1,
      subscriptions: [{ topicFilter: "no", qos: 0 }, { topicFilter: "yes", qos: 1 }],
    });
    assert.deepEqual((await client.expect(9)).reasonCodes, [0x87, 1]);
  });

  test("read rights at delivery are asked per QoS: a QoS 0 answer is not reused for QoS 1", async () => {
    // Subscribing to q/# is allowed at any QoS; reading a topic only at QoS 0.
    const b = newBroker({
      hooks: [{ authorizeSubscribe: (_c, f, qos) => f === "q/#" || qos === 0 }],
    });
    const { client: s } = await PacketClient.connect(b, { clientId: "s", protocolVersion: 5 });
    s.send({ type: 8, packetId: 1, subscriptions: [{ topicFilter: "q/#", qos: 1 }] });
    assert.deepEqual((await s.expect(9)).reasonCodes, [1]);
    const { client: p } = await PacketClient.connect(b, { clientId: "p", protocolVersion: 5 });
    p.send({ type: 3, qos: 0, retain: false, dup: false, topic: "q/a", payload: text("zero") });
    assert.equal((await s.expect(3)).qos, 0);
    p.send({
      type: 3,
      qos: 1,
      packetId: 7,
      retain: false,
      dup: false,
      topic: "q/a",
      payload: text("one"),
    });
    await p.expect(4);
    await s.expectNothing(100);
    assert.equal(b.stats.dropped.notAuthorized, 1);
  });

  test("a will the client may not publish is not stored", async () => {
    const b = newBroker({ hooks: [{ authorizePublish: (_c, t) => t !== "will/denied" }] });
    const { client: s } = await PacketClient.connect(b, { clientId: "s" });
    s.send({ type: 8, packetId: 1, subscriptions: [{ topicFilter: "will/#", qos: 0 }] });
    await s.expect(9);
    const { client: w } = await PacketClient.connect(b, {
      clientId: "w",
      will: { topic: "will/denied", payload: text("x"), qos: 0, retain: false },
    });
    w.drop();
    await w.expectClosed();
    await s.expectNothing(100);
  });

  test("onConnected, onSubscribed, onPublished, onDisconnected are called", async () => {
    const seen: string[] = [];
    const b = newBroker({
      hooks: [{
        onConnected: (c) => seen.push("connected " + c.clientId),
        onSubscribed: (c, f) => seen.push(`subscribed ${c.clientId} ${f}`),
        onPublished: (t) => seen.push("published " + t),
        onDisconnected: (c) => seen.push("disconnected " + c.clientId),
      }],
    });
    const { client } = await PacketClient.connect(b, { clientId: "n" });
    client.send({ type: 8, packetId: 1, subscriptions: [{ topicFilter: "t", qos: 0 }] });
    await client.expect(9);
    client.send({ type: 3, topic: "t", payload: text("x"), qos: 0, retain: false, dup: false });
    await client.expect(3);
    client.send({ type: 14 });
    await client.expectClosed();
    await new Promise((r) => setTimeout(r, 20));
    assert.deepEqual(seen, [
      "connected n",
      "subscribed n t",
      "published t",
      "disconnected n",
    ]);
  });
});
