// MQTT 5.0 features at the packet level: properties, options, flow control, reason codes.
import { afterEach, describe, test } from "node:test";
import assert from "node:assert/strict";
import type { PublishPacket, QoS, SubscribeRequest } from "../src/mqtt/packet.ts";
import type { Broker } from "../src/broker/broker.ts";
import { closeAll, newBroker, PacketClient, str, text } from "./helpers/packet_client.ts";

afterEach(closeAll);

const v5 = (b: Broker, clientId: string, extra = {}) =>
  PacketClient.connect(b, { clientId, protocolVersion: 5, ...extra });

async function sub(c: PacketClient, subs: Partial<SubscribeRequest>[], id?: number) {
  c.send({
    type: 8,
    packetId: 1,
    subscriptions: subs.map((s) => ({ topicFilter: "t", qos: 0 as QoS, ...s })),
    properties: id ? { subscriptionIdentifier: [id] } : undefined,
  });
  return (await c.expect(9)).reasonCodes;
}

function pub(topic: string, payload: string, extra: Partial<PublishPacket> = {}): PublishPacket {
  return { type: 3, topic, payload: text(payload), qos: 0, retain: false, dup: false, ...extra };
}

describe("MQTT 5.0", () => {
  test("CONNACK advertises the broker's capabilities and limits", async () => {
    const b = newBroker({ maxInflight: 7, maximumPacketSize: 5000 });
    const { connack } = await v5(b, "caps");
    const p = connack.properties!;
    assert.equal(p.receiveMaximum, 7);
    assert.equal(p.maximumPacketSize, 5000);
    assert.ok(p.topicAliasMaximum! > 0);
    assert.equal(p.retainAvailable, 1);
    assert.equal(p.wildcardSubscriptionAvailable, 1);
    assert.equal(p.subscriptionIdentifierAvailable, 1);
    assert.equal(p.sharedSubscriptionAvailable, 1);
  });

  test("Server Keep Alive and Response Information when configured and asked", async () => {
    const b = newBroker({ maxKeepAlive: 30, responseInformation: "resp/{clientId}/" });
    const { connack } = await v5(b, "ka", {
      keepAlive: 600,
      properties: { requestResponseInformation: 1 },
    });
    assert.equal(connack.properties!.serverKeepAlive, 30);
    assert.equal(connack.properties!.responseInformation, "resp/ka/");
  });

  test("message properties are forwarded, user properties in order", async () => {
    const b = newBroker();
    const { client: s } = await v5(b, "s");
    await sub(s, [{ topicFilter: "p" }]);
    const { client: p } = await v5(b, "p");
    const props = {
      payloadFormatIndicator: 1,
      contentType: "text/plain",
      responseTopic: "reply/here",
      correlationData: text("corr"),
      userProperties: [["b", "2"], ["a", "1"], ["b", "3"]] as [string, string][],
    };
    p.send(pub("p", "x", { properties: props }));
    const m = await s.expect(3);
    assert.equal(m.properties?.contentType, "text/plain");
    assert.equal(m.properties?.responseTopic, "reply/here");
    assert.equal(str(m.properties!.correlationData!), "corr");
    assert.equal(m.properties?.payloadFormatIndicator, 1);
    assert.deepEqual(m.properties?.userProperties, props.userProperties);
  });

  test("Payload Format Indicator 1 with invalid UTF-8 is refused with 0x99", async () => {
    const b = newBroker();
    const { client: p } = await v5(b, "p");
    p.send({
      ...pub("pf", ""),
      payload: new Uint8Array([0xff, 0xfe]),
      qos: 1,
      packetId: 3,
      properties: { payloadFormatIndicator: 1 },
    });
    assert.equal((await p.expect(4)).reasonCode, 0x99);
  });

  test("PUBACK 0x10 when no subscriber matched", async () => {
    const b = newBroker();
    const { client: p } = await v5(b, "p");
    p.send(pub("nobody", "x", { qos: 1, packetId: 1 }));
    assert.equal((await p.expect(4)).reasonCode, 0x10);
  });

  test("Message Expiry: the remaining interval is forwarded; expired queued messages are dropped", async () => {
    const b = newBroker();
    const opts = { clean: false, properties: { sessionExpiryInterval: 60 } };
    const first = await v5(b, "exp", opts);
    await sub(first.client, [{ topicFilter: "e/#", qos: 1 }]);
    first.client.send({ type: 14 });
    await first.client.expectClosed();
    const { client: p } = await v5(b, "p");
    p.send(
      pub("e/short", "gone", { qos: 1, packetId: 1, properties: { messageExpiryInterval: 1 } }),
    );
    p.send(
      pub("e/long", "kept", { qos: 1, packetId: 2, properties: { messageExpiryInterval: 100 } }),
    );
    await p.expect(4);
    await p.expect(4);
    await new Promise((r) => setTimeout(r, 1100));
    const again = await v5(b, "exp", opts);
    const m = await again.client.expect(3);
    assert.equal(str(m.payload), "kept");
    assert.ok(m.properties!.messageExpiryInterval! <= 99);
    await again.client.expectNothing(80);
  });

  test("a message past its expiry is not sent to an online subscriber [MQTT-3.3.2-5]", async () => {
    const b = newBroker();
    const { client: s } = await v5(b, "online");
    await sub(s, [{ topicFilter: "late/#", qos: 1 }]);
    const past = Date.now() - 1;
    for (const qos of [0, 1, 2] as const) {
      await b.publish({
        topic: `late/${qos}`,
        payload: text("x"),
        qos,
        retain: false,
        expiresAt: past,
      });
    }
    await b.publish({ topic: "late/fresh", payload: text("y"), qos: 1, retain: false });
    assert.equal((await s.expect(3)).topic, "late/fresh");
    await s.expectNothing(80);
    assert.equal(b.stats.dropped.expired, 3);
  });

  test("topic aliases from the client: set, reuse, invalid (0x94), unknown (0x82)", async () => {
    const b = newBroker({ topicAliasMaximum: 5 });
    const { client: s } = await v5(b, "s");
    await sub(s, [{ topicFilter: "alias/#" }]);
    const { client: p } = await v5(b, "p");
    p.send(pub("alias/long/topic", "1", { properties: { topicAlias: 2 } }));
    p.send(pub("", "2", { properties: { topicAlias: 2 } }));
    assert.equal((await s.expect(3)).topic, "alias/long/topic");
    assert.equal((await s.expect(3)).topic, "alias/long/topic");

    p.send(pub("x", "3", { properties: { topicAlias: 6 } }));
    assert.equal((await p.expect(14)).reasonCode, 0x94);
    const { client: q } = await v5(b, "q");
    q.send(pub("", "4", { properties: { topicAlias: 3 } }));
    assert.equal((await q.expect(14)).reasonCode, 0x82);
  });

  test("topic aliases towards the client when enabled and allowed", async () => {
    const b = newBroker({ outgoingTopicAliases: true });
    const { client: s } = await v5(b, "s", { properties: { topicAliasMaximum: 1 } });
    await sub(s, [{ topicFilter: "oa/#" }]);
    const { client: p } = await v5(b, "p");
    p.send(pub("oa/one", "1"));
    p.send(pub("oa/one", "2"));
    p.send(pub("oa/two", "3"));
    const m1 = await s.expect(3);
    const m2 = await s.expect(3);
    const m3 = await s.expect(3);
    assert.equal(m1.topic, "oa/one");
    assert.equal(m1.properties?.topicAlias, 1);
    assert.equal(m2.topic, "");
    assert.equal(m2.properties?.topicAlias, 1);
    assert.equal(m3.topic, "oa/two"); // no room for a second alias
    assert.equal(m3.properties?.topicAlias, undefined);
  });

  test("a client PUBLISH with a Subscription Identifier is a protocol error", async () => {
    const b = newBroker();
    const { client } = await v5(b, "p");
    client.send(pub("t", "x", { properties: { subscriptionIdentifier: [5] } }));
    assert.equal((await client.expect(14)).reasonCode, 0x82);
  });

  test("Subscription Identifiers are delivered, one per matching subscription", async () => {
    const b = newBroker();
    const { client: s } = await v5(b, "s");
    await sub(s, [{ topicFilter: "si/#" }], 11);
    await sub(s, [{ topicFilter: "si/+" }], 22);
    const { client: p } = await v5(b, "p");
    p.send(pub("si/x", "x"));
    const m = await s.expect(3);
    assert.deepEqual([...m.properties!.subscriptionIdentifier!].sort((a, b) => a - b), [11, 22]);
    await s.expectNothing(50);
  });

  test("No Local: not delivered back to the publisher", async () => {
    const b = newBroker();
    const { client } = await v5(b, "nl");
    await sub(client, [{ topicFilter: "nl", noLocal: true }]);
    client.send(pub("nl", "x"));
    await client.expectNothing(80);
  });

  test("Retain As Published keeps the RETAIN flag on live delivery", async () => {
    const b = newBroker();
    const { client: s } = await v5(b, "s");
    await sub(s, [{ topicFilter: "rap/a", retainAsPublished: true }, { topicFilter: "rap/b" }]);
    const { client: p } = await v5(b, "p");
    p.send(pub("rap/a", "1", { retain: true }));
    p.send(pub("rap/b", "2", { retain: true }));
    assert.equal((await s.expect(3)).retain, true);
    assert.equal((await s.expect(3)).retain, false);
  });

  test("Retain Handling 0 always, 1 only on a new subscription, 2 never", async () => {
    const b = newBroker();
    const { client: p } = await v5(b, "p");
    p.send(pub("rh", "kept", { retain: true }));
    const { client: s } = await v5(b, "s");
    const subscribe = async (rh: 0 | 1 | 2) => {
      await sub(s, [{ topicFilter: "rh", retainHandling: rh }]);
      await s.expectNothing(60).catch(() => {});
      return s.pending().splice(0).length;
    };
    assert.equal(await subscribe(2), 0);
    assert.equal(await subscribe(1), 0); // already subscribed (by the rh=2 one)
    assert.equal(await subscribe(0), 1);
    s.send({ type: 10, packetId: 2, topicFilters: ["rh"] });
    await s.expect(11);
    assert.equal(await subscribe(1), 1); // new again
  });

  test("the client's Receive Maximum caps unacknowledged QoS 1 sends", async () => {
    const b = newBroker({ maxInflight: 50 });
    const { client: s } = await v5(b, "s", { properties: { receiveMaximum: 2 } });
    await sub(s, [{ topicFilter: "rm", qos: 1 }]);
    const { client: p } = await v5(b, "p");
    for (let i = 1; i <= 4; i++) p.send(pub("rm", String(i), { qos: 1, packetId: i }));
    const a = await s.expect(3);
    await s.expect(3);
    await s.expectNothing(80);
    s.send({ type: 4, packetId: a.packetId! });
    assert.equal(str((await s.expect(3)).payload), "3");
  });

  test("exceeding our Receive Maximum with QoS 2 gets DISCONNECT 0x93", async () => {
    const b = newBroker({ maxInflight: 2 });
    const { client: p } = await v5(b, "p");
    for (let i = 1; i <= 3; i++) p.send(pub("q2", "x", { qos: 2, packetId: i }));
    await p.expect(5);
    await p.expect(5);
    assert.equal((await p.expect(14)).reasonCode, 0x93);
  });

  test("a message larger than the client's Maximum Packet Size is not sent to it", async () => {
    const b = newBroker();
    const { client: s } = await v5(b, "s", { properties: { maximumPacketSize: 64 } });
    await sub(s, [{ topicFilter: "big", qos: 1 }]);
    const { client: p } = await v5(b, "p");
    p.send(pub("big", "x".repeat(200), { qos: 1, packetId: 1 }));
    p.send(pub("big", "small", { qos: 1, packetId: 2 }));
    const m = await s.expect(3);
    assert.equal(str(m.payload), "small");
  });

  test("Session Expiry raised from 0 at DISCONNECT is a protocol error", async () => {
    const b = newBroker();
    const { client } = await v5(b, "se");
    client.send({ type: 14, reasonCode: 0, properties: { sessionExpiryInterval: 30 } });
    assert.equal((await client.expect(14)).reasonCode, 0x82);
  });

  test("DISCONNECT 0x04 publishes the will", async () => {
    const b = newBroker();
    const { client: s } = await v5(b, "s");
    await sub(s, [{ topicFilter: "w" }]);
    const { client } = await v5(b, "w", {
      will: { topic: "w", payload: text("bye"), qos: 0, retain: false },
    });
    client.send({ type: 14, reasonCode: 0x04 });
    assert.equal(str((await s.expect(3)).payload), "bye");
  });

  test("UNSUBACK reason codes: 0x00, 0x11 no subscription, 0x8F invalid filter", async () => {
    const b = newBroker();
    const { client } = await v5(b, "u");
    await sub(client, [{ topicFilter: "here" }]);
    client.send({ type: 10, packetId: 9, topicFilters: ["here", "absent", "bad/#/x"] });
    assert.deepEqual((await client.expect(11)).reasonCodes, [0x00, 0x11, 0x8f]);
  });

  test("SUBACK 0x8F for an invalid filter, granted QoS otherwise", async () => {
    const b = newBroker();
    const { client } = await v5(b, "s");
    const codes = await sub(client, [{ topicFilter: "a/#/b" }, { topicFilter: "ok", qos: 2 }]);
    assert.deepEqual(codes, [0x8f, 2]);
  });

  test("shutdown sends DISCONNECT 0x8B, or 0x9C with a Server Reference when configured", async () => {
    const b = newBroker();
    const { client } = await v5(b, "bye");
    const closing = b.close();
    assert.equal((await client.expect(14)).reasonCode, 0x8b);
    await closing;
    const moved = newBroker({ serverReference: { reference: "other:1883", permanent: false } });
    const { client: c2 } = await v5(moved, "bye2");
    const closing2 = moved.close();
    const d = await c2.expect(14);
    assert.equal(d.reasonCode, 0x9c);
    assert.equal(d.properties?.serverReference, "other:1883");
    await closing2;
  });
});

describe("MQTT 5.0 reason codes for reused ids and bad will payloads", () => {
  test("QoS 1 with a packet id held by an unreleased QoS 2 message gets PUBACK 0x91", async () => {
    const b = newBroker();
    const { client } = await v5(b, "pid");
    client.send(pub("q", "two", { qos: 2, packetId: 7 }));
    await client.expect(5);
    client.send(pub("q", "one", { qos: 1, packetId: 7 }));
    assert.equal((await client.expect(4)).reasonCode, 0x91);
    client.send({ type: 6, packetId: 7 });
    assert.equal((await client.expect(7)).reasonCode ?? 0, 0);
  });

  test("a will that claims UTF-8 but is not gets CONNACK 0x99", async () => {
    const b = newBroker();
    const c = new PacketClient(b, 5);
    c.send({
      type: 1,
      protocolName: "MQTT",
      protocolVersion: 5,
      clean: true,
      keepAlive: 0,
      clientId: "w",
      will: {
        topic: "w",
        payload: new Uint8Array([0xc3, 0x28]),
        qos: 0,
        retain: false,
        properties: { payloadFormatIndicator: 1 },
      },
    });
    assert.equal((await c.expect(2)).reasonCode, 0x99);
    await c.expectClosed();
  });
});

describe("MQTT 5.0 SUBACK/UNSUBACK 0x91 and 0x97", () => {
  test("SUBSCRIBE and UNSUBSCRIBE reusing an unreleased QoS 2 id get 0x91", async () => {
    const b = newBroker();
    const { client } = await v5(b, "sid");
    client.send(pub("q", "two", { qos: 2, packetId: 9 }));
    await client.expect(5);
    client.send({ type: 8, packetId: 9, subscriptions: [{ topicFilter: "a", qos: 0 }] });
    assert.deepEqual((await client.expect(9)).reasonCodes, [0x91]);
    client.send({ type: 10, packetId: 9, topicFilters: ["a"] });
    assert.deepEqual((await client.expect(11)).reasonCodes, [0x91]);
  });

  test("max-subscriptions-per-client: SUBACK 0x97 past the quota (3.1.1: 0x80)", async () => {
    const b = newBroker({ maxSubscriptionsPerClient: 2 });
    const { client } = await v5(b, "quota");
    const codes = await sub(client, [{ topicFilter: "a" }, { topicFilter: "b" }, {
      topicFilter: "c",
    }]);
    assert.deepEqual(codes, [0, 0, 0x97]);
    assert.deepEqual(await sub(client, [{ topicFilter: "a", qos: 1 }]), [1]); // replacing is fine
    const { client: old } = await PacketClient.connect(b, { clientId: "q4" });
    old.send({
      type: 8,
      packetId: 1,
      subscriptions: ["x", "y", "z"].map((t) => ({ topicFilter: t, qos: 0 as QoS })),
    });
    assert.deepEqual((await old.expect(9)).reasonCodes, [0, 0, 0x80]);
  });

  test("by default one client holds at most 10,000 subscriptions (memory per client bounded)", async () => {
    const b = newBroker();
    const { client } = await v5(b, "many");
    for (let at = 0; at < 10_000; at += 500) {
      const subs = Array.from({ length: 500 }, (_, i) => ({ topicFilter: `f/${at + i}` }));
      assert.ok((await sub(client, subs)).every((c) => c === 0));
    }
    assert.deepEqual(await sub(client, [{ topicFilter: "one/more" }]), [0x97]);
  });
});
