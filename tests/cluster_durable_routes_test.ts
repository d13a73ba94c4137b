/**
 * Across nodes, a QoS 1 publisher waits for the receiving node's answer only where a persistent
 * session wants the message (src/cluster/durable_routes.ts): two in-process nodes
 * (Broker, Redis store, Redis bus, ClusterNode) on a real redis-server, with what node A sends
 * over the bus recorded.
 */
import { CREDIT_ACK, CREDIT_BYTES, creditCost } from "../src/cluster/credits.ts";
import { test } from "node:test";
import assert from "node:assert/strict";
import type { NodeId } from "../src/cluster/types.ts";
import type { Packet } from "../src/mqtt/packet.ts";
import { redisWithAdminForFile } from "./helpers/redis_server.ts";
import { PacketClient, text } from "./helpers/packet_client.ts";
import { startInProcessNode, stopNodes, until } from "./helpers/inprocess_node.ts";

const redis = redisWithAdminForFile();
const skip = redis.skip;

interface Sent {
  to: NodeId;
  topic: string;
  qos: number;
  ack: number | undefined;
}

/** A node as app.ts starts one (`announce`: its restored routes announced), and what it sent. */
async function startNode(id: string, announce: boolean) {
  const sent: Sent[] = [];
  const n = await startInProcessNode(redis.server().url, id, {
    prefix: "durable:cluster:",
    announce,
    onSend: (to, msg) => {
      if (msg.kind !== "publish") return;
      sent.push({ to, topic: msg.message.topic, qos: msg.message.qos, ack: msg.ack });
    },
  });
  return { ...n, sent };
}
type TestNode = Awaited<ReturnType<typeof startNode>>;

/**
 * A test on a flushed Redis with node A ("001", announcing) and one other node (`other`,
 * announcing its durable routes if `announces`), both stopped after it.
 */
function twoNodeTest(
  name: string,
  fn: (a: TestNode, b: TestNode) => Promise<void>,
  other = "002",
  announces = true,
): void {
  test(name, { skip, timeout: 90_000 }, async () => {
    await redis.admin().client.sendCommand(["FLUSHDB"]);
    const a = await startNode("001", true);
    const b = await startNode(other, announces);
    try {
      await fn(a, b);
    } finally {
      await stopNodes(a, b);
    }
  });
}

/** An ack id the publisher's PUBACK waits for (not none, not on credit). */
const waited = (ack: number | undefined) => ack !== undefined && ack !== CREDIT_ACK;

const publish = (topic: string, qos: 0 | 1 | 2, packetId?: number): Packet =>
  ({ type: 3, topic, payload: text("hello"), qos, retain: false, dup: false, packetId }) as Packet;

/** Whether node `a` would wait for `to`'s answer to a QoS 1 message on `topic` now. */
const waitsFor = (a: TestNode, to: NodeId, topic: string) =>
  a.node["routes"].durable.mustAnswer(to, topic);

/** The one message `a` sent to `to` on `topic` after `from` of its record. */
function sentOnce(a: TestNode, from: number, to: NodeId, topic: string): Sent {
  const found = a.sent.slice(from).filter((s) => s.to === to && s.topic === topic);
  assert.equal(found.length, 1, `sent to ${to} on ${topic}: ${JSON.stringify(found)}`);
  return found[0];
}

/** Waits until `a` has `to`'s marker and a durable route matching `topic`. */
async function knowsDurable(a: TestNode, to: NodeId, topic: string): Promise<void> {
  await until(() => !waitsFor(a, to, "no/such/topic"), `${to}'s marker on A`);
  await until(() => waitsFor(a, to, topic), `${to}'s durable route for ${topic} on A`);
}

/**
 * Route changes reach the other nodes in the order made: once A has a new filter of B's, it has
 * every change B made before it.
 */
async function barrier(a: TestNode, b: TestNode, to: NodeId): Promise<void> {
  const filter = "barrier/" + Math.random().toString(36).slice(2);
  const probe = await subscribe(b, "barrier-" + filter, filter);
  await until(() => a.node["routes"].nodes(filter).includes(to), "the barrier route on A");
  probe.send({ type: 14 });
}

async function subscribe(on: TestNode, clientId: string, filter: string, clean = true) {
  const { client } = await PacketClient.connect(on.broker, { clientId, clean });
  client.send({ type: 8, packetId: 1, subscriptions: [{ topicFilter: filter, qos: 1 }] });
  await client.expect(9);
  return client;
}

twoNodeTest(
  "QoS 1 across nodes waits for an answer only where a persistent session wants it",
  async (a, b) => {
    let open = () => {};
    try {
      // On B: a clean subscriber to d/clean, and a persistent one to d/dur, then offline.
      const clean = await subscribe(b, "c", "d/clean");
      const persistent = await subscribe(b, "s", "d/dur", false);
      persistent.drop();
      await persistent.expectClosed();
      await b.broker.journal!.settled();
      await knowsDurable(a, "002", "d/dur");
      assert.equal(waitsFor(a, "002", "d/clean"), false, "a clean session's filter is not durable");
      const { client: p } = await PacketClient.connect(a.broker, { clientId: "p" });

      // For the clean session alone: sent on credit (no answer waited for), acknowledged, delivered.
      let mark = a.sent.length;
      p.send(publish("d/clean", 1, 1));
      assert.equal((await p.expect(4, 15_000)).packetId, 1);
      assert.equal(sentOnce(a, mark, "002", "d/clean").ack, CREDIT_ACK);
      assert.equal((await clean.expect(3, 15_000)).topic, "d/clean");

      // QoS 2 is always answered (its exactly-once memory on B relies on it).
      mark = a.sent.length;
      p.send(publish("d/clean", 2, 2));
      assert.equal((await p.expect(5, 15_000)).packetId, 2);
      assert.ok(waited(sentOnce(a, mark, "002", "d/clean").ack));

      // For the persistent session: the PUBACK waits until B's batch holding its copy is stored.
      b.ctl.gate = new Promise((r) => open = r);
      mark = a.sent.length;
      p.send(publish("d/dur", 1, 3));
      await until(() => b.ctl.entered === 1, "B writing the copy's batch");
      await p.expectNothing(300); // no PUBACK before B stored it
      assert.ok(waited(sentOnce(a, mark, "002", "d/dur").ack));
      open();
      assert.equal((await p.expect(4, 15_000)).packetId, 3);

      // The persistent session ends (a clean start): its durable route goes with it.
      const again = await subscribe(b, "s", "d/other");
      await until(() => !waitsFor(a, "002", "d/dur"), "B's durable route withdrawn");
      again.drop();
    } finally {
      open();
    }
  },
);

// C: an older build, or one still restoring.
twoNodeTest(
  "a node that does not announce durable routes answers every QoS 1 message",
  async (a, c) => {
    const sub = await subscribe(c, "c", "old/clean");
    await until(() => a.node.forwarding, "C's route on A");
    assert.equal(waitsFor(a, "003", "old/clean"), true);
    const { client: p } = await PacketClient.connect(a.broker, { clientId: "p" });
    const mark = a.sent.length;
    p.send(publish("old/clean", 1, 1));
    assert.equal((await p.expect(4, 15_000)).packetId, 1);
    assert.ok(waited(sentOnce(a, mark, "003", "old/clean").ack));
    assert.equal((await sub.expect(3, 15_000)).topic, "old/clean");
  },
  "003",
  false,
);

twoNodeTest(
  "a session's persistence changing while subscribed moves its durable routes",
  async (a, b) => {
    // A clean session on B holds x/t; the same client id connecting as persistent ends it (it
    // lasted as long as its connection [MQTT-3.1.2-6]) and subscribes again, durable now.
    await subscribe(b, "s", "x/t");
    await until(() => a.node["routes"].nodes("x/t").includes("002"), "x/t on A");
    assert.equal(waitsFor(a, "002", "x/t"), false);
    const { client: s, connack } = await PacketClient.connect(b.broker, {
      clientId: "s",
      clean: false,
    });
    assert.equal(connack.sessionPresent, false);
    s.send({ type: 8, packetId: 1, subscriptions: [{ topicFilter: "x/t", qos: 1 }] });
    await s.expect(9);
    await knowsDurable(a, "002", "x/t");

    // Another persistent session holds x/t too: "s" unsubscribing leaves it durable.
    const q = await subscribe(b, "q", "x/t", false);
    q.drop();
    await q.expectClosed();
    s.send({ type: 10, packetId: 2, topicFilters: ["x/t"] });
    await s.expect(11);
    await barrier(a, b, "002");
    assert.equal(waitsFor(a, "002", "x/t"), true, "q's durable route taken away by s");

    // 5.0: a persistent session set to expire at once by its DISCONNECT takes its route along.
    const { client: v5 } = await PacketClient.connect(b.broker, {
      clientId: "v5",
      clean: false,
      protocolVersion: 5,
      properties: { sessionExpiryInterval: 3600 },
    });
    v5.send({ type: 8, packetId: 1, subscriptions: [{ topicFilter: "y/t", qos: 1 }] });
    await v5.expect(9);
    await knowsDurable(a, "002", "y/t");
    v5.send({ type: 14, reasonCode: 0, properties: { sessionExpiryInterval: 0 } });
    await v5.expectClosed();
    await until(() => !waitsFor(a, "002", "y/t"), "y/t's durable route withdrawn");
  },
);

twoNodeTest(
  "QoS 1 to clean sessions goes on credit, handed back in bulk; used up, it waits",
  async (a, b) => {
    const sub = await subscribe(b, "c", "big/t");
    await until(() => a.node["routes"].nodes("big/t").includes("002"), "big/t on A");
    await until(() => !waitsFor(a, "002", "no/such/topic"), "B's marker on A");
    const { client: p } = await PacketClient.connect(a.broker, { clientId: "p" });
    const payload = new Uint8Array(64 * 1024);
    const cost = creditCost({ topic: "big/t", payload, qos: 1, retain: false, from: "p" });
    let id = 0;
    /** Publish one, wait for its PUBACK and its delivery on B; what A sent it with. */
    const one = async () => {
      const mark = a.sent.length;
      p.send({
        type: 3,
        topic: "big/t",
        payload,
        qos: 1,
        retain: false,
        dup: false,
        packetId: ++id,
      });
      assert.equal((await p.expect(4, 15_000)).packetId, id);
      assert.equal((await sub.expect(3, 15_000)).topic, "big/t");
      return sentOnce(a, mark, "002", "big/t").ack;
    };
    // Twice the credit, one at a time: B hands it back, so every one goes on credit. The
    // hand-back goes per 128 KiB (two of these) on its own way through Redis; waiting for it
    // keeps a slow machine from sending the next message first (seen once in CI).
    const credits = a.node["acks"].credits;
    const n = Math.ceil((2 * CREDIT_BYTES) / cost);
    for (let i = 0; i < n; i++) {
      assert.equal(await one(), CREDIT_ACK, `message ${i + 1} of ${n}`);
      await until(() => credits.used("002") <= cost, `at most one message's credit out (${i + 1})`);
    }
    await until(() => credits.used("002") === 0, "all the credit back on A");

    // B hands nothing back now (as if its answers were lost): the credit runs out, and the
    // message past it waits for B's answer (which B still sends: its PUBACK comes).
    b.node["acks"].routedOnCredit = () => {};
    const fit = Math.floor(CREDIT_BYTES / cost);
    for (let i = 0; i < fit; i++) assert.equal(await one(), CREDIT_ACK, `on credit ${i + 1}`);
    assert.ok(waited(await one()), "past the credit: waits for the answer");
    assert.ok(waited(await one()));
  },
);
