// The client's Maximum Packet Size binds every packet the broker sends it [MQTT-3.1.2-24], not
// only PUBLISH: Reason Strings and User Properties are left out rather than exceed it
// ([MQTT-3.14.2-3/4], [MQTT-3.2.2-19/20]), a topic alias counts, and a CONNACK that cannot fit
// is not sent at all.
import { afterEach, describe, test } from "node:test";
import assert from "node:assert/strict";
import type { Packet, Properties, PublishPacket, QoS } from "../src/mqtt/packet.ts";
import { encode } from "../src/mqtt/encoder.ts";
import type { Broker } from "../src/broker/broker.ts";
import { closeAll, newBroker, PacketClient, str, text } from "./helpers/packet_client.ts";

afterEach(closeAll);

const v5 = (b: Broker, clientId: string, maximumPacketSize?: number, extra = {}) =>
  PacketClient.connect(b, {
    clientId,
    protocolVersion: 5,
    properties: maximumPacketSize ? { maximumPacketSize } : undefined,
    ...extra,
  });

const size = (p: Packet) => encode(p, 5).length;

/** A 5.0 CONNECT sent, its answer (if any) left to the test. */
const unanswered = (b: Broker, clientId: string, properties: Properties, extra = {}) =>
  PacketClient.open(b, { protocolVersion: 5, clientId, properties, ...extra });

function pub(topic: string, payload: string, qos: QoS = 0, packetId?: number): PublishPacket {
  return { type: 3, topic, payload: text(payload), qos, retain: false, dup: false, packetId };
}

async function subscribe(c: PacketClient, topicFilter: string) {
  c.send({ type: 8, packetId: 1, subscriptions: [{ topicFilter, qos: 0 }] } as Packet);
  await c.expect(9);
}

describe("the client's Maximum Packet Size", () => {
  test("a server DISCONNECT leaves out its Reason String when it would not fit", async () => {
    const b = newBroker();
    const { client: roomy } = await v5(b, "roomy");
    roomy.send(pub("a/#", "x")); // a wildcard in a topic name: 0x90
    const full = await roomy.expect(14);
    assert.equal(full.reasonCode, 0x90);
    assert.ok(full.properties?.reasonString, "with room, the reason is told");

    const { client: small } = await v5(b, "small", 20);
    small.send(pub("a/#", "x"));
    const d = await small.expect(14);
    assert.equal(d.reasonCode, 0x90);
    assert.equal(d.properties?.reasonString, undefined);
    assert.ok(size(d) <= 20, `DISCONNECT of ${size(d)} bytes against a limit of 20`);
  });

  test("an outgoing topic alias counts toward it", async () => {
    const b = newBroker({ outgoingTopicAliases: true });
    const plain = size(pub("sensors/one", "12345"));
    // Room for exactly the message without an alias, and aliases allowed.
    const { client: sub } = await v5(b, "sub", undefined, {
      properties: { maximumPacketSize: plain, topicAliasMaximum: 10 },
    });
    await subscribe(sub, "sensors/#");
    const { client: p } = await v5(b, "p");
    p.send(pub("sensors/one", "12345"));
    p.send(pub("sensors/one", "1"));
    const first = await sub.expect(3);
    assert.ok(size(first) <= plain, `PUBLISH of ${size(first)} bytes against ${plain}`);
    assert.equal(first.topic, "sensors/one");
    assert.equal(str(first.payload), "12345", "sent whole, without an alias, not dropped");
    // The smaller one has room for the alias (and, the first having set none, the topic too).
    const second = await sub.expect(3);
    assert.equal(second.topic, "sensors/one");
    assert.equal(second.properties?.topicAlias, 1);
    assert.ok(size(second) <= plain);
  });

  test("a CONNACK leaves out what restates the defaults, and is not sent if it still cannot fit", async () => {
    const b = newBroker({ maximumPacketSize: 5000 });
    const { connack: full } = await v5(b, "", undefined);
    const whole = size(full);
    assert.equal(full.properties?.retainAvailable, 1, "told in full when there is room");

    const { connack } = await v5(b, "", whole - 1);
    assert.ok(size(connack) <= whole - 1, `CONNACK of ${size(connack)} bytes`);
    assert.ok(connack.properties?.assignedClientIdentifier, "the assigned id stays");
    assert.equal(connack.properties?.receiveMaximum, full.properties?.receiveMaximum);
    assert.equal(connack.properties?.maximumPacketSize, 5000);
    assert.equal(connack.properties?.retainAvailable, undefined, "1 is the default");

    // Too small even trimmed: closed before its session, will or takeover is opened.
    const { client: watcher } = await v5(b, "watcher");
    await subscribe(watcher, "will/#");
    const { client: held } = await v5(b, "tiny", undefined, {
      clean: false,
      properties: { sessionExpiryInterval: 60 },
    });
    const tiny = unanswered(b, "tiny", { maximumPacketSize: 10, sessionExpiryInterval: 60 }, {
      clean: false,
      will: { topic: "will/tiny", payload: text("gone"), qos: 0, retain: false },
    });
    await tiny.expectClosed();
    assert.deepEqual(tiny.pending(), [], "closed without a CONNACK over 10 bytes");
    await watcher.expectNothing(200); // no will: it never connected
    await held.expectNothing(50); // and the connected "tiny" was not taken over
    assert.equal(held.closed, false);
  });

  test("a refusing CONNACK leaves out its Reason String when it would not fit", async () => {
    const refusal = { ok: false as const, reasonCode: 0x87, reasonString: "x".repeat(100) };
    const b = newBroker({ hooks: [{ authenticate: () => refusal }] });
    const c = unanswered(b, "refused", { maximumPacketSize: 40 });
    const ack = await c.expect(2);
    assert.equal(ack.reasonCode, 0x87);
    assert.equal(ack.properties?.reasonString, undefined);
    assert.ok(size(ack) <= 40);
  });
});
