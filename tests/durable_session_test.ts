/**
 * Durable sessions through the session store, in-process: a broker "crashes"
 * (the store's data is copied as it stands, then the broker is dropped) and a
 * new broker starts from that copy. Acknowledged messages are all delivered,
 * QoS 2 exactly once, with PUBREL state on both sides. A store that has not
 * stored a message yet holds its PUBACK back; one that fails closes the
 * publisher instead of acknowledging.
 */
import { afterEach, describe, test } from "node:test";
import assert from "node:assert/strict";
import { Broker } from "../src/broker/broker.ts";
import { restoreSessions } from "../src/broker/restore.ts";
import { MemorySessionData, MemorySessionStore, MemoryStore } from "../src/store/memory.ts";
import type { SessionBatch, SessionStore, StoredState } from "../src/store/types.ts";
import {
  PacketClient,
  publishPacket,
  str,
  testBrokerOptions,
  text,
} from "./helpers/packet_client.ts";

const brokers: Broker[] = [];
afterEach(async () => {
  await Promise.all(brokers.splice(0).map((b) => b.close()));
});

async function start(sessions: SessionStore): Promise<Broker> {
  const b = new Broker(testBrokerOptions(), new MemoryStore(sessions));
  brokers.push(b);
  restoreSessions(b, await sessions.load());
  return b;
}

/** The store's data as it stands now: what a restarted broker would find. */
function crashCopy(data: MemorySessionData): MemorySessionData {
  const copy = new MemorySessionData();
  for (const [k, v] of data.messages) copy.messages.set(k, { ...v });
  for (const [k, s] of data.sessions) {
    copy.sessions.set(k, {
      meta: s.meta,
      subscriptions: new Map(s.subscriptions),
      queue: new Map(s.queue),
      inflight: new Map(s.inflight),
      incomingQos2: new Set(s.incomingQos2),
      lastPacketId: s.lastPacketId,
    });
  }
  return copy;
}

const publish = (packetId: number, qos: 1 | 2, payload: string) =>
  publishPacket("d/t", payload, qos, packetId);

/** Read `n` messages, completing each QoS 1/2 flow as packets come. */
async function receiveAll(client: PacketClient, n: number): Promise<string[]> {
  const got: string[] = [];
  while (got.length < n) {
    const p = await client.next(5000);
    if (p.type === 3) {
      got.push(str(p.payload));
      if (p.qos === 1) client.send({ type: 4, packetId: p.packetId! });
      if (p.qos === 2) client.send({ type: 5, packetId: p.packetId! });
    } else if (p.type === 6) client.send({ type: 7, packetId: p.packetId });
    else throw new Error(`unexpected packet type ${p.type}`);
  }
  return got;
}

/** Answer the PUBRELs still coming; fail on anything else (no message twice). */
async function finishReleases(client: PacketClient): Promise<void> {
  for (;;) {
    const p = await client.next(300).catch(() => undefined);
    if (!p) return;
    if (p.type !== 6) throw new Error(`unexpected packet type ${p.type}`);
    client.send({ type: 7, packetId: p.packetId });
  }
}

async function persistentSubscriber(b: Broker, id = "sub", filter = "d/#") {
  const { client } = await PacketClient.connect(b, { clientId: id, clean: false });
  client.send({ type: 8, packetId: 1, subscriptions: [{ topicFilter: filter, qos: 2 }] });
  await client.expect(9);
  return client;
}

describe("durable sessions (session store)", () => {
  test("acknowledged QoS 1 and 2 messages for an offline session survive a crash, once each", async () => {
    const data = new MemorySessionData();
    const b1 = await start(new MemorySessionStore(data));
    const sub = await persistentSubscriber(b1);
    sub.send({ type: 14, reasonCode: 0 });
    await sub.expectClosed();
    const { client: pub } = await PacketClient.connect(b1, { clientId: "pub" });
    for (let i = 1; i <= 20; i++) {
      pub.send(publish(i, i % 2 === 0 ? 2 : 1, `m${i}`));
      const ack = await pub.next();
      assert.equal(ack.type, i % 2 === 0 ? 5 : 4);
      if (i % 2 === 0) {
        pub.send({ type: 6, packetId: i });
        await pub.expect(7);
      }
    }
    const b2 = await start(new MemorySessionStore(crashCopy(data)));
    const { client, connack } = await PacketClient.connect(b2, { clientId: "sub", clean: false });
    assert.equal(connack.sessionPresent, true);
    const got = await receiveAll(client, 20);
    assert.deepEqual(got, Array.from({ length: 20 }, (_, i) => `m${i + 1}`));
    await finishReleases(client);
    // The subscription came back too.
    const { client: p2 } = await PacketClient.connect(b2, { clientId: "p2" });
    p2.send(publish(1, 1, "after"));
    await p2.expect(4);
    assert.equal(str((await client.expect(3)).payload), "after");
  });

  test("QoS 2 PUBREL state survives on both sides", async () => {
    const data = new MemorySessionData();
    const b1 = await start(new MemorySessionStore(data));
    const sub = await persistentSubscriber(b1);
    const { client: pub } = await PacketClient.connect(b1, { clientId: "pub", clean: false });
    pub.send(publish(7, 2, "once"));
    await pub.expect(5); // PUBREC: the broker has it; PUBREL not sent yet
    const m = await sub.expect(3);
    sub.send({ type: 5, packetId: m.packetId! });
    await sub.expect(6); // PUBREL: the subscriber's PUBCOMP is outstanding
    await b1.journal!.settled();

    const b2 = await start(new MemorySessionStore(crashCopy(data)));
    const { client: s2 } = await PacketClient.connect(b2, { clientId: "sub", clean: false });
    const rel = await s2.expect(6); // PUBREL again, not the PUBLISH [MQTT-4.4.0-1]
    assert.equal(rel.packetId, m.packetId);
    s2.send({ type: 7, packetId: m.packetId! });
    const { client: p2 } = await PacketClient.connect(b2, { clientId: "pub", clean: false });
    p2.send({ ...publish(7, 2, "once"), dup: true }); // the publisher resends: not routed again
    await p2.expect(5);
    p2.send({ type: 6, packetId: 7 });
    await p2.expect(7);
    await s2.expectNothing(200);
  });

  test("a delayed will still fires after a restart", async () => {
    const data = new MemorySessionData();
    const b1 = await start(new MemorySessionStore(data));
    await persistentSubscriber(b1, "watcher", "will/#");
    const { client } = await PacketClient.connect(b1, {
      clientId: "dying",
      protocolVersion: 5,
      clean: false,
      properties: { sessionExpiryInterval: 60 },
      will: {
        topic: "will/x",
        payload: text("bye"),
        qos: 1,
        retain: false,
        properties: { willDelayInterval: 1 },
      },
    });
    client.drop(); // no DISCONNECT: the will waits 1 s
    await client.expectClosed();
    await b1.journal!.settled();
    const b2 = await start(new MemorySessionStore(crashCopy(data)));
    const { client: w } = await PacketClient.connect(b2, { clientId: "watcher", clean: false });
    const m = await w.expect(3, 5000);
    assert.equal(str(m.payload), "bye");
  });

  test("a will sent at restart reaches sessions restored after its own", async () => {
    const data = new MemorySessionData();
    const b1 = await start(new MemorySessionStore(data));
    // Connected when the broker dies: its will goes at restart [MQTT-3.1.2-8]; stored first.
    await PacketClient.connect(b1, {
      clientId: "first",
      protocolVersion: 5,
      clean: false,
      properties: { sessionExpiryInterval: 60 },
      will: { topic: "will/first", payload: text("gone"), qos: 1, retain: false },
    });
    const watcher = await persistentSubscriber(b1, "later", "will/#");
    watcher.send({ type: 14, reasonCode: 0 });
    await watcher.expectClosed();
    await b1.journal!.settled();
    const b2 = await start(new MemorySessionStore(crashCopy(data)));
    const { client: w } = await PacketClient.connect(b2, { clientId: "later", clean: false });
    const m = await w.expect(3, 5000);
    assert.equal(str(m.payload), "gone");
  });

  test("an expired session leaves nothing in the store", async () => {
    const data = new MemorySessionData();
    const b = await start(new MemorySessionStore(data));
    const { client } = await PacketClient.connect(b, {
      clientId: "brief",
      protocolVersion: 5,
      clean: false,
      properties: { sessionExpiryInterval: 1 },
    });
    client.send({ type: 8, packetId: 1, subscriptions: [{ topicFilter: "d/#", qos: 1 }] });
    await client.expect(9);
    client.send({ type: 14, reasonCode: 0 });
    await client.expectClosed();
    const { client: pub } = await PacketClient.connect(b, { clientId: "pub" });
    pub.send(publish(1, 1, "held"));
    await pub.expect(4);
    assert.equal(data.messages.size, 1);
    await new Promise((r) => setTimeout(r, 1500));
    await b.journal!.settled();
    assert.equal(data.sessions.size, 0);
    assert.equal(data.messages.size, 0);
  });

  test("SUBACK of a persistent session waits for the store; a restored session keeps its owner", async () => {
    const data = new MemorySessionData();
    const inner = new MemorySessionStore(data);
    let hold: (() => void) | undefined;
    const gated: SessionStore = {
      load: (): Promise<StoredState> => inner.load(),
      write: async (batch: SessionBatch) => {
        const subscribes = [...batch.changes.values()].flat().some((c) => c.kind === "subscribe");
        if (subscribes) await new Promise<void>((r) => (hold = r));
        return inner.write(batch);
      },
      close: () => inner.close(),
    };
    const b1 = await start(gated);
    const { client } = await PacketClient.connect(b1, {
      clientId: "owned",
      clean: false,
      username: "alice",
    });
    client.send({ type: 8, packetId: 1, subscriptions: [{ topicFilter: "o/#", qos: 1 }] });
    await client.expectNothing(200);
    assert.ok(hold, "the subscription is being written");
    hold!();
    await client.expect(9);
    await b1.journal!.settled();

    const b2 = await start(new MemorySessionStore(crashCopy(data)));
    const stolen = new PacketClient(b2, 4);
    stolen.send({
      type: 1,
      protocolName: "MQTT",
      protocolVersion: 4,
      clean: false,
      keepAlive: 0,
      clientId: "owned",
      username: "mallory",
    });
    const refused = await stolen.expect(2);
    assert.notEqual(refused.reasonCode, 0, "another user may not resume a restored session");
    const { connack } = await PacketClient.connect(b2, {
      clientId: "owned",
      clean: false,
      username: "alice",
    });
    assert.equal(connack.sessionPresent, true);
  });

  test("a QoS 2 message a hook refuses leaves no inbound packet id in the store", async () => {
    const data = new MemorySessionData();
    const sessions = new MemorySessionStore(data);
    const b = new Broker(
      testBrokerOptions({ hooks: [{ persistPublish: () => Promise.reject(new Error("no")) }] }),
      new MemoryStore(sessions),
    );
    brokers.push(b);
    const { client } = await PacketClient.connect(b, {
      clientId: "refused",
      protocolVersion: 5,
      clean: false,
      properties: { sessionExpiryInterval: 60 },
    });
    client.send(publish(9, 2, "x"));
    const rec = await client.expect(5);
    assert.equal(rec.reasonCode, 0x80);
    await b.journal!.settled();
    assert.deepEqual([...data.sessions.get("refused")!.incomingQos2], []);
  });

  test("PUBACK waits until the store has the message; a failing store closes the publisher", async () => {
    const data = new MemorySessionData();
    const inner = new MemorySessionStore(data);
    let hold: (() => void) | undefined;
    let fail = false;
    const gated: SessionStore = {
      load: (): Promise<StoredState> => inner.load(),
      write: async (batch: SessionBatch) => {
        if (fail) throw new Error("store down");
        if (batch.messages.length > 0) await new Promise<void>((r) => (hold = r));
        return inner.write(batch);
      },
      close: () => inner.close(),
    };
    const b = await start(gated);
    const sub = await persistentSubscriber(b);
    sub.drop();
    await sub.expectClosed();
    const { client: pub } = await PacketClient.connect(b, { clientId: "pub" });
    pub.send(publish(1, 1, "slow"));
    await pub.expectNothing(200);
    assert.ok(hold, "the write is in progress");
    hold!();
    assert.equal((await pub.expect(4)).packetId, 1);
    fail = true;
    pub.send(publish(2, 1, "lost"));
    await pub.expectClosed();
    assert.deepEqual(pub.pending().filter((p) => p.type === 4), []);
  });
});
