// A held PUBACK/PUBREC and the session batch holding its message's deliveries ("acknowledged
// means kept"): a hook (Kafka ack-after, a bridge, another cluster node) holds the
// acknowledgement while that batch is written; when the batch fails, the publisher is never
// told the message is kept, and its connection is closed so it resends (never a final 0x80).
import { afterEach, describe, test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { PacketClient, testBrokerOptions, text } from "./helpers/packet_client.ts";
import { Broker } from "../src/broker/broker.ts";
import type { BrokerHooks } from "../src/broker/hooks.ts";
import { LocalClient } from "../src/broker/local_client.ts";
import type { Packet, QoS } from "../src/mqtt/packet.ts";
import type { SessionBatchBuilder } from "../src/store/batch.ts";
import { openSqliteStore } from "../src/store/sqlite.ts";

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0)) await c();
});

/** Holds every message on `held/...` until release(). */
function holdingHook() {
  const waiting: (() => void)[] = [];
  let seen = 0;
  const hooks: BrokerHooks = {
    persistPublish(m) {
      if (!m.topic.startsWith("held/")) return;
      seen++;
      return new Promise<void>((resolve) => waiting.push(resolve));
    },
  };
  return { hooks, seen: () => seen, release: () => waiting.splice(0).forEach((r) => r()) };
}

/**
 * A broker on SQLite whose batches carrying chosen topics fail, for real: a rider throws inside
 * the transaction, which SQLite rolls back. `fails`: in turn, the next batch carrying `topic`
 * fails, after waiting for `gate` if given; `entered` counts them.
 */
function failingBroker(hooks: BrokerHooks) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "mqttx-held-store-"));
  const store = openSqliteStore({ path: path.join(dir, "mqttx.db") });
  const ctl = { fails: [] as { topic: string; gate?: Promise<void> }[], entered: 0 };
  const write = store.sessions.write.bind(store.sessions);
  store.sessions.write = async (batch) => {
    const b = batch as SessionBatchBuilder;
    const f = ctl.fails[0];
    if (f && b.messages.some((m) => m.topic === f.topic)) {
      ctl.fails.shift();
      ctl.entered++;
      if (f.gate) await f.gate;
      b.riders.push({ sqlite: () => assert.fail("disk full") });
    }
    return write(batch);
  };
  const broker = new Broker(testBrokerOptions({ hooks: [hooks] }), store);
  cleanups.push(async () => {
    await broker.close(); // closes the store
    fs.rmSync(dir, { recursive: true, force: true });
  });
  return { broker, ctl };
}

async function until(what: string, ok: () => boolean): Promise<void> {
  const deadline = Date.now() + 5000;
  while (!ok()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

/** A persistent subscriber to `held/#` and `free/#`, offline: its copies live in the store. */
async function offlineSubscriber(broker: Broker, clientId: string): Promise<void> {
  const { client } = await PacketClient.connect(broker, { clientId, clean: false });
  client.send({
    type: 8,
    packetId: 1,
    subscriptions: [{ topicFilter: "held/#", qos: 1 }, { topicFilter: "free/#", qos: 1 }],
  });
  await client.expect(9);
  client.drop();
  await client.expectClosed();
  await broker.journal!.settled();
}

const pub = (topic: string, qos: QoS, packetId: number, extra: Partial<Packet> = {}): Packet =>
  ({
    type: 3,
    topic,
    payload: text(topic),
    qos,
    retain: false,
    dup: false,
    packetId,
    ...extra,
  }) as Packet;

/** The subscriber comes back: the message is there (stored, or rewritten from memory). */
async function receives(broker: Broker, clientId: string, topic: string): Promise<void> {
  const { client } = await PacketClient.connect(broker, { clientId, clean: false });
  const got = await client.expect(3);
  assert.equal(got.topic, topic);
}

describe("a held acknowledgement whose deliveries' batch failed", () => {
  test("5.0: closed with 0x80 (no PUBACK); the resend is acknowledged and delivered", async () => {
    const h = holdingHook();
    const { broker, ctl } = failingBroker(h.hooks);
    await offlineSubscriber(broker, "s");
    const journal = broker.journal!;
    const { client: p } = await PacketClient.connect(broker, {
      clientId: "p",
      protocolVersion: 5,
    });
    ctl.fails.push({ topic: "held/1" });
    const failed = journal.stats.failedBatches;
    p.send(pub("held/1", 1, 7));
    await until("the batch to fail", () => journal.stats.failedBatches > failed);
    h.release(); // nothing is open now: the acknowledgement would go at once
    const d = await p.expect(14); // DISCONNECT, not a PUBACK (final for 5.0: never resent)
    assert.equal(d.reasonCode, 0x80);
    await p.expectClosed();

    const { client: again } = await PacketClient.connect(broker, {
      clientId: "p",
      protocolVersion: 5,
    });
    again.send(pub("held/1", 1, 7, { dup: true }));
    await until("the hook to hold the resend", () => h.seen() === 2);
    h.release();
    const ack = await again.expect(4);
    assert.equal(ack.packetId, 7);
    assert.equal(ack.reasonCode, 0);
    await receives(broker, "s", "held/1");
  });

  test("3.1.1, retained QoS 2 (routed after its retained write): dropped, no PUBREC", async () => {
    const h = holdingHook();
    const { broker, ctl } = failingBroker(h.hooks);
    await offlineSubscriber(broker, "s");
    const journal = broker.journal!;
    const { client: p } = await PacketClient.connect(broker, { clientId: "p4" });
    ctl.fails.push({ topic: "held/r" });
    const failed = journal.stats.failedBatches;
    p.send(pub("held/r", 2, 3, { retain: true }));
    await until("the batch to fail", () => journal.stats.failedBatches > failed);
    h.release();
    await p.expectClosed(); // 3.1.1 has no refusal: the client resends after reconnecting
    assert.deepEqual(p.pending(), [], "acknowledged although its batch failed");
    await receives(broker, "s", "held/r");
  });

  test("QoS 2 of a persistent 3.1.1 publisher: its resend is acknowledged, never routed twice", async () => {
    const h = holdingHook();
    const { broker, ctl } = failingBroker(h.hooks);
    await offlineSubscriber(broker, "s");
    const journal = broker.journal!;
    const { client: p } = await PacketClient.connect(broker, { clientId: "q", clean: false });
    ctl.fails.push({ topic: "held/q" });
    const failed = journal.stats.failedBatches;
    p.send(pub("held/q", 2, 5));
    await until("the batch to fail", () => journal.stats.failedBatches > failed);
    h.release();
    await p.expectClosed();
    assert.deepEqual(p.pending(), [], "PUBREC although its batch failed");
    // The resend is the message already taken [MQTT-4.3.3-2]: acknowledged once the sessions
    // its batch touched are written again (refused, the connection closed, until then).
    for (let acked = false; !acked;) {
      const { client: again } = await PacketClient.connect(broker, { clientId: "q", clean: false });
      again.send(pub("held/q", 2, 5, { dup: true }));
      const got = await again.next(5000).catch(() => undefined);
      if (got?.type === 5) acked = true;
      else await again.expectClosed();
      again.drop();
    }
    assert.equal(h.seen(), 1, "routed once");
    const { client: s } = await PacketClient.connect(broker, { clientId: "s", clean: false });
    assert.equal((await s.expect(3)).topic, "held/q");
    await s.expectNothing(200);
  });

  test("still being written when the hold ends: waits for it, then closes", async () => {
    const h = holdingHook();
    const { broker, ctl } = failingBroker(h.hooks);
    await offlineSubscriber(broker, "s");
    const journal = broker.journal!;
    const { client: p } = await PacketClient.connect(broker, {
      clientId: "p",
      protocolVersion: 5,
    });
    let open!: () => void;
    ctl.fails.push({ topic: "held/2", gate: new Promise((r) => (open = r)) });
    const failed = journal.stats.failedBatches;
    p.send(pub("held/2", 1, 9));
    await until("its batch to be written", () => ctl.entered === 1);
    // Another change opens the next batch, which will be stored: the acknowledgement must
    // not wait for that one only.
    const other = await PacketClient.connect(broker, { clientId: "other", clean: false });
    h.release();
    await p.expectNothing(50);
    open();
    const d = await p.expect(14);
    assert.equal(d.reasonCode, 0x80);
    assert.ok(journal.stats.failedBatches > failed);
    other.client.drop();
  });

  test("another message's failed batch does not refuse it", async () => {
    const h = holdingHook();
    const { broker, ctl } = failingBroker(h.hooks);
    await offlineSubscriber(broker, "s");
    const journal = broker.journal!;
    const { client: p1 } = await PacketClient.connect(broker, {
      clientId: "p1",
      protocolVersion: 5,
    });
    const { client: p2 } = await PacketClient.connect(broker, {
      clientId: "p2",
      protocolVersion: 5,
    });
    const failed = journal.stats.failedBatches;
    p1.send(pub("held/ok", 1, 1));
    await until("the hook to hold it", () => h.seen() === 1);
    await journal.settled(); // its batch is stored
    assert.equal(journal.stats.failedBatches, failed);
    ctl.fails.push({ topic: "free/x" });
    p2.send(pub("free/x", 1, 2)); // not held: its own batch fails, p2 is closed
    assert.equal((await p2.expect(14)).reasonCode, 0x80);
    assert.ok(journal.stats.failedBatches > failed);
    h.release();
    const ack = await p1.expect(4);
    assert.equal(ack.packetId, 1);
    assert.equal(ack.reasonCode, 0);
    assert.equal(p1.closed, false);
  });
});

describe("an in-process publish (a bridge's upstream) held while another batch fails", () => {
  test("a retained QoS 1 publish resolves when its own batch was stored", async () => {
    const h = holdingHook();
    const { broker, ctl } = failingBroker(h.hooks);
    await offlineSubscriber(broker, "s");
    const journal = broker.journal!;
    const { client: p2 } = await PacketClient.connect(broker, {
      clientId: "p2",
      protocolVersion: 5,
    });
    const { client: watch } = await PacketClient.connect(broker, { clientId: "watch" });
    watch.send({ type: 8, packetId: 1, subscriptions: [{ topicFilter: "held/#", qos: 0 }] });
    await watch.expect(9);
    const failed = journal.stats.failedBatches;
    const local = new LocalClient(broker, "$bridge");
    const published = Promise.resolve(local.publish("held/kept", "k", { qos: 1, retain: true }));
    published.catch(() => {});
    await watch.expect(3); // routed (after its retained write)
    await journal.settled(); // its batch is stored
    ctl.fails.push({ topic: "free/y" });
    p2.send(pub("free/y", 1, 2)); // another message, its own batch fails
    assert.equal((await p2.expect(14)).reasonCode, 0x80);
    assert.ok(journal.stats.failedBatches > failed);
    h.release();
    assert.equal(await published, 2);
  });
});

describe("a QoS 2 resend while the sessions are rewritten", () => {
  test("queued on the batch after a rewrite that fails: refused, acknowledged later", async () => {
    const { broker, ctl } = failingBroker(holdingHook().hooks);
    await offlineSubscriber(broker, "s");
    // Its batch fails; then the rewrite of the sessions it touched (s's queue carries the
    // message again) is held until the resend waits on the batch after it, and fails too.
    let open!: () => void;
    ctl.fails.push({ topic: "free/w" }, { topic: "free/w", gate: new Promise((r) => (open = r)) });
    const { client: p } = await PacketClient.connect(broker, { clientId: "w", clean: false });
    p.send(pub("free/w", 2, 4));
    await p.expectClosed();
    assert.deepEqual(p.pending(), []);
    await until("the rewrite to be written", () => ctl.entered === 2);
    const { client: again } = await PacketClient.connect(broker, { clientId: "w", clean: false });
    again.send(pub("free/w", 2, 4, { dup: true }));
    await again.expectNothing(50);
    open();
    await again.expectClosed();
    assert.deepEqual(again.pending(), [], "PUBREC although the sessions' rewrite failed");
    for (let acked = false; !acked;) {
      const { client: c } = await PacketClient.connect(broker, { clientId: "w", clean: false });
      c.send(pub("free/w", 2, 4, { dup: true }));
      const got = await c.next(5000).catch(() => undefined);
      if (got?.type === 5) acked = true;
      else await c.expectClosed();
      c.drop();
    }
    const { client: s } = await PacketClient.connect(broker, { clientId: "s", clean: false });
    assert.equal((await s.expect(3)).topic, "free/w");
    await s.expectNothing(200);
  });
});
