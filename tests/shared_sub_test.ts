// Shared subscriptions $share/{group}/{filter}: one member per group per message.
import { afterEach, describe, test } from "node:test";
import assert from "node:assert/strict";
import {
  closeAll,
  newBroker,
  PacketClient,
  publishPacket,
  str,
  text,
} from "./helpers/packet_client.ts";
import type { Broker } from "../src/broker/broker.ts";

afterEach(closeAll);

async function member(b: Broker, id: string, filter = "$share/g/job/#") {
  const { client } = await PacketClient.connect(b, { clientId: id });
  client.send({ type: 8, packetId: 1, subscriptions: [{ topicFilter: filter, qos: 0 }] });
  await client.expect(9);
  return client;
}

async function drain(c: PacketClient): Promise<string[]> {
  await c.expectNothing(60).catch(() => {});
  return c.pending().splice(0).map((p) => (p.type === 3 ? str(p.payload) : "?"));
}

describe("shared subscriptions", () => {
  test("round: each message goes to exactly one member, in turn", async () => {
    const b = newBroker();
    const m1 = await member(b, "m1");
    const m2 = await member(b, "m2");
    const plain = await member(b, "plain", "job/#");
    const { client: p } = await PacketClient.connect(b, { clientId: "p" });
    for (let i = 0; i < 6; i++) {
      p.send({
        type: 3,
        topic: "job/x",
        payload: text(String(i)),
        qos: 0,
        retain: false,
        dup: false,
      });
    }
    p.send({ type: 12 });
    await p.expect(13);
    const a = await drain(m1);
    const c = await drain(m2);
    assert.equal(a.length, 3);
    assert.equal(c.length, 3);
    assert.deepEqual([...a, ...c].sort(), ["0", "1", "2", "3", "4", "5"]);
    assert.equal((await drain(plain)).length, 6);
  });

  test("hash: one publisher's messages stick to one member", async () => {
    const b = newBroker({ shareTopic: { enable: true, strategy: "hash" } });
    const m1 = await member(b, "m1");
    const m2 = await member(b, "m2");
    const { client: p } = await PacketClient.connect(b, { clientId: "sticky" });
    for (let i = 0; i < 6; i++) {
      p.send({
        type: 3,
        topic: "job/x",
        payload: text(String(i)),
        qos: 0,
        retain: false,
        dup: false,
      });
    }
    p.send({ type: 12 });
    await p.expect(13);
    const counts = [(await drain(m1)).length, (await drain(m2)).length].sort();
    assert.deepEqual(counts, [0, 6]);
  });

  test("invalid share names are refused", async () => {
    const b = newBroker();
    const { client } = await PacketClient.connect(b, { clientId: "s" });
    client.send({
      type: 8,
      packetId: 1,
      subscriptions: [
        { topicFilter: "$share/a+/x", qos: 0 },
        { topicFilter: "$share//x", qos: 0 },
        { topicFilter: "$share/g", qos: 0 },
      ],
    });
    assert.deepEqual((await client.expect(9)).reasonCodes, [0x80, 0x80, 0x80]);
  });

  test("share-topic.enable false refuses shared filters", async () => {
    const b = newBroker({ shareTopic: { enable: false, strategy: "round" } });
    const { client } = await PacketClient.connect(b, { clientId: "s", protocolVersion: 5 });
    client.send({ type: 8, packetId: 1, subscriptions: [{ topicFilter: "$share/g/x", qos: 0 }] });
    assert.deepEqual((await client.expect(9)).reasonCodes, [0x9e]);
  });
});

describe("shared subscriptions: a member that leaves", () => {
  test("its unacknowledged QoS 1 messages go to another member", async () => {
    const b = newBroker({ maxInflight: 2 });
    const members = [];
    for (const id of ["m1", "m2"]) {
      const { client } = await PacketClient.connect(b, { clientId: id, clean: false });
      client.send({ type: 8, packetId: 1, subscriptions: [{ topicFilter: "$share/g/w", qos: 1 }] });
      await client.expect(9);
      members.push(client);
    }
    const [m1, m2] = members;
    const { client: p } = await PacketClient.connect(b, { clientId: "p" });
    for (let i = 1; i <= 6; i++) {
      p.send({
        type: 3,
        topic: "w",
        payload: text(String(i)),
        qos: 1,
        retain: false,
        dup: false,
        packetId: i,
      });
      await p.expect(4);
    }
    // m2 acknowledges what it gets; m1 acknowledges nothing, then drops.
    const fromM2 = new Set<string>();
    for (;;) {
      const m = await m2.next(300).catch(() => undefined);
      if (!m) break;
      if (m.type === 3) {
        fromM2.add(str(m.payload));
        m2.send({ type: 4, packetId: m.packetId! });
      }
    }
    const heldByM1 = m1.pending().filter((x) => x.type === 3).length;
    assert.ok(heldByM1 > 0);
    m1.drop();
    await m1.expectClosed();
    for (;;) {
      const m = await m2.next(300).catch(() => undefined);
      if (!m) break;
      if (m.type === 3) {
        fromM2.add(str(m.payload));
        m2.send({ type: 4, packetId: m.packetId! });
      }
    }
    assert.deepEqual([...fromM2].sort(), ["1", "2", "3", "4", "5", "6"]);
  });
});

test("a shared QoS 2 message in flight stays with its member [MQTT-4.8.2-4]", async () => {
  const b = newBroker();
  const member = async (id: string) => {
    const { client } = await PacketClient.connect(b, { clientId: id, clean: false });
    client.send({ type: 8, packetId: 1, subscriptions: [{ topicFilter: "$share/g/j", qos: 2 }] });
    await client.expect(9);
    return client;
  };
  const m1 = await member("m1");
  const m2 = await member("m2");
  const { client: p } = await PacketClient.connect(b, { clientId: "p" });
  p.send({
    type: 3,
    topic: "j",
    payload: text("x"),
    qos: 2,
    retain: false,
    dup: false,
    packetId: 1,
  });
  await p.expect(5);
  await new Promise((r) => setTimeout(r, 50));
  const holder = m1.pending().some((x) => x.type === 3) ? m1 : m2;
  const other = holder === m1 ? m2 : m1;
  holder.drop();
  await holder.expectClosed();
  await other.expectNothing(200);
  // The member gets it again (DUP) when it comes back.
  const back = await PacketClient.connect(b, {
    clientId: holder === m1 ? "m1" : "m2",
    clean: false,
  });
  const again = await back.client.expect(3);
  assert.equal(again.dup, true);
  assert.equal(str(again.payload), "x");
});

describe("shared subscriptions: a member's session that ends", () => {
  async function qos1Member(b: Broker, id: string, clean: boolean) {
    const { client } = await PacketClient.connect(b, { clientId: id, clean });
    client.send({ type: 8, packetId: 1, subscriptions: [{ topicFilter: "$share/g/w", qos: 1 }] });
    await client.expect(9);
    return client;
  }

  async function publish(b: Broker, n: number) {
    const { client: p } = await PacketClient.connect(b, { clientId: "p" });
    for (let i = 0; i < n; i++) {
      p.send(publishPacket("w", String(i), 1, i + 1));
      await p.expect(4);
    }
  }

  /** Reads and acknowledges every PUBLISH until quiet; returns the payloads. */
  async function takeAll(c: PacketClient): Promise<string[]> {
    const got: string[] = [];
    for (;;) {
      const m = await c.next(150).catch(() => undefined);
      if (!m) return got;
      if (m.type !== 3) continue;
      got.push(str(m.payload));
      c.send({ type: 4, packetId: m.packetId! });
    }
  }

  async function split(b: Broker) {
    const keeper = await qos1Member(b, "keeper", false);
    const lazy = await qos1Member(b, "lazy", false); // reads, never acknowledges
    await publish(b, 6);
    const kept = await takeAll(keeper);
    const held: string[] = [];
    for (const p of lazy.pending().splice(0)) if (p.type === 3) held.push(str(p.payload));
    assert.equal(kept.length + held.length, 6);
    assert.ok(held.length > 0, "round robin gave the lazy member some");
    return { keeper, lazy, held };
  }

  test("taken over by a clean connection: its unacknowledged messages go to another member (5.0 4.8.2)", async () => {
    const b = newBroker();
    const { keeper, held } = await split(b);
    await PacketClient.connect(b, { clientId: "lazy", clean: true });
    assert.deepEqual((await takeAll(keeper)).sort(), held.sort());
  });

  test("ended by a clean reconnect while offline: its messages go to a member online again", async () => {
    const b = newBroker();
    const { keeper, lazy, held } = await split(b);
    keeper.drop();
    await keeper.expectClosed();
    lazy.drop(); // no other member online: its messages wait with it
    await lazy.expectClosed();
    const { client: back } = await PacketClient.connect(b, { clientId: "keeper", clean: false });
    await PacketClient.connect(b, { clientId: "lazy", clean: true });
    assert.deepEqual((await takeAll(back)).sort(), held.sort());
  });

  test("ended while every other member is offline: its messages wait for one of them (5.0 4.8.2)", async () => {
    const b = newBroker();
    const { keeper, lazy, held } = await split(b);
    keeper.drop();
    await keeper.expectClosed();
    lazy.drop();
    await lazy.expectClosed();
    // The lazy member's session ends with nobody online: the offline member is still subscribed.
    const { client: ended } = await PacketClient.connect(b, { clientId: "lazy", clean: true });
    await ended.expectNothing(100);
    const { client: back } = await PacketClient.connect(b, { clientId: "keeper", clean: false });
    assert.deepEqual((await takeAll(back)).sort(), held.sort());
  });

  test("ignore-client-self-pub: a publisher that is a member is not picked", async () => {
    const b = newBroker({ ignoreClientSelfPub: true });
    const self = await qos1Member(b, "self", true);
    const other = await qos1Member(b, "other", true);
    for (let i = 0; i < 4; i++) self.send(publishPacket("w", String(i), 1, i + 1));
    const toOther = await takeAll(other);
    const toSelf = (await takeAll(self)).length;
    assert.equal(toSelf, 0, "not delivered back to its publisher");
    assert.deepEqual(toOther.sort(), ["0", "1", "2", "3"]);
  });
});

test("a member alone in its group gets its unacknowledged messages again with their ids and DUP [MQTT-4.4.0-1]", async () => {
  const b = newBroker();
  const { client: m } = await PacketClient.connect(b, { clientId: "alone", clean: false });
  m.send({ type: 8, packetId: 1, subscriptions: [{ topicFilter: "$share/g/w", qos: 1 }] });
  await m.expect(9);
  const { client: p } = await PacketClient.connect(b, { clientId: "p" });
  for (let i = 1; i <= 3; i++) {
    p.send(publishPacket("w", `m${i}`, 1, i));
    await p.expect(4);
  }
  const first = [];
  for (let i = 0; i < 3; i++) first.push(await m.expect(3));
  m.drop(); // no other member online: they stay in flight for it
  await m.expectClosed();
  const { client: back, connack } = await PacketClient.connect(b, {
    clientId: "alone",
    clean: false,
  });
  assert.equal(connack.sessionPresent, true);
  for (const f of first) {
    const again = await back.expect(3);
    assert.equal(again.packetId, f.packetId);
    assert.equal(again.dup, true);
    assert.equal(str(again.payload), str(f.payload));
  }
});
