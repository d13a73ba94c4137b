/**
 * The retained resync of a cluster node (src/cluster/node.ts) against the
 * retained changes of another node, with two in-process nodes (Broker, Redis
 * store, Redis bus, ClusterNode) on a real redis-server. Each race is made to
 * happen every time: a BLPOP on a store's own Redis connection holds back the
 * commands queued behind it (Redis runs one connection's commands in order)
 * until the test pushes to the gate's list.
 *
 * - Another node's change that reaches this node over the bus before it
 *   reaches Redis, followed by a resync here: what the resync reads must not
 *   undo it for good. Fixed by announcing a change only once Redis holds it.
 * - A change here, and another node's change heard over the bus, while the
 *   resync's read is held: both survive (the store's `touched` set, and this
 *   node's writes and reads share one connection; this held before the fix).
 * - A change whose store write fails while the bus is up still reaches the
 *   others once the store is back.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { Broker } from "../src/broker/broker.ts";
import { changeRetained } from "../src/broker/retained_change.ts";
import { ClusterNode } from "../src/cluster/node.ts";
import { KafkaBus } from "../src/cluster/kafka.ts";
import { RedisBus, type RedisBusOptions } from "../src/cluster/redis.ts";
import type { BusHandlers } from "../src/cluster/types.ts";
import type { RedisStore } from "../src/store/redis.ts";
import type { MessageData } from "../src/store/types.ts";
import { openRedisStore, redisServerForFile } from "./helpers/redis_server.ts";
import { testBrokerOptions } from "./helpers/packet_client.ts";
import { kafkaAvailable, type MockKafka, startMockKafka } from "./helpers/kafka_mock.ts";
import { mustRun } from "./helpers/harness.ts";

const redis = redisServerForFile();
const skip = redis.skip;
const kafkaSkip = skip ||
  (!kafkaAvailable() && !mustRun() ? "needs gcc, librdkafka-dev and kcat" : false);
let kafka: MockKafka | undefined;
const enc = new TextEncoder();
const dec = new TextDecoder();
let cluster = 0;
let admin: RedisStore | undefined;

before(async () => {
  if (!skip) admin = await openRedisStore(redis.server().url);
  if (!kafkaSkip) kafka = await startMockKafka([]);
});
after(async () => {
  await kafka?.stop();
  await admin?.close();
});

/** The bus between the nodes: Redis pub/sub, or Kafka (state in Redis either way). */
type BusKind = "redis" | "kafka";

function newBus(kind: BusKind, o: RedisBusOptions, cluster: number): RedisBus {
  if (kind === "redis") return new RedisBus(o);
  return new KafkaBus({
    ...o,
    kafka: { brokers: kafka!.bootstrap.split(","), clientId: `race-${o.nodeId}` },
    topicPrefix: `race${cluster}.cluster.`,
  });
}

interface TestNode {
  store: RedisStore;
  broker: Broker;
  node: ClusterNode;
  /** What the bus reports to its node (to play a bus that was down and is back). */
  handlers: BusHandlers;
}

async function startNode(id: string, kind: BusKind, cluster: number): Promise<TestNode> {
  const store = await openRedisStore(redis.server().url);
  const broker = new Broker(testBrokerOptions({ brokerId: id }), store);
  const bus = newBus(kind, {
    url: redis.server().url,
    nodeId: id,
    heartbeatInterval: 100,
    nodeTimeout: 5_000,
    prefix: `race${cluster}:cluster:`,
  }, cluster);
  let handlers: BusHandlers | undefined;
  const join = bus.join.bind(bus);
  bus.join = (h) => {
    handlers = h;
    return join(h);
  };
  const node = new ClusterNode(broker, bus, store, "round", 5_000);
  await node.start();
  await node.retainedSettled();
  return { store, broker, node, handlers: handlers! };
}

async function twoNodes(kind: BusKind): Promise<[TestNode, TestNode]> {
  await admin!.client.sendCommand(["FLUSHDB"]);
  const n = ++cluster;
  return [await startNode("001", kind, n), await startNode("002", kind, n)];
}

async function stopNodes(nodes: TestNode[]): Promise<void> {
  for (const n of nodes) {
    await n.node.stop();
    await n.broker.close();
  }
}

function retainedMessage(topic: string, payload: string): MessageData {
  return { topic, payload: enc.encode(payload), qos: 0, retain: true };
}

function change(n: TestNode, topic: string, payload: string | undefined): Promise<void> {
  const m = payload === undefined ? undefined : retainedMessage(topic, payload);
  return changeRetained(n.store, n.node, topic, m) ?? Promise.resolve();
}

/** Change `topic` on `from` and wait until `to` has it. */
async function changeSeen(from: TestNode, to: TestNode, topic: string, payload: string) {
  await change(from, topic, payload);
  await until(() => payloadOn(to, topic) === payload, `${topic}=${payload} on the other node`);
}

function payloadOn(n: TestNode, topic: string): string | undefined {
  const m = n.store.retainedOf(topic);
  return m && dec.decode(m.payload);
}

/** The payload of `topic`'s retained message in Redis. */
async function inRedis(topic: string): Promise<string | undefined> {
  const p = await admin!.client.sendCommand(["HGET", admin!.keys.retained(topic), "p"]);
  return p == null ? undefined : String(p);
}

async function until(
  cond: () => boolean | Promise<boolean>,
  what: string,
  ms = 20_000,
): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out: ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/**
 * `from`'s bus has carried to `to` everything `from` sent before this call: a
 * marker broadcast after it (a bus keeps the order of one sender's broadcasts).
 */
async function busDrained(from: TestNode, to: TestNode): Promise<void> {
  const marker = `marker/${crypto.randomUUID()}`;
  from.node.retained(marker, retainedMessage(marker, "x"), undefined);
  await until(() => to.store.retainedOf(marker) !== undefined, "the marker crossed the bus");
}

/** Hold the commands `n`'s store sends from now on, until `open()`. */
function gate(n: TestNode): { open(): Promise<void> } {
  const list = `gate:${crypto.randomUUID()}`;
  const held = n.store.client.sendCommand(["BLPOP", list, "0"]);
  held.catch(() => {}); // a test may cut the connection
  return {
    open: async () => {
      await admin!.client.sendCommand(["LPUSH", list, "go"]);
      await held;
    },
  };
}

/** The node's bus reports it was down and is back: the node resyncs its retained index. */
function busBack(n: TestNode): void {
  n.handlers.state(false);
  n.handlers.state(true);
}

for (const kind of ["redis", "kafka"] as const) {
  describe(`cluster (${kind} bus): retained resync against other nodes' changes`, {
    skip: kind === "redis" ? skip : kafkaSkip,
  }, () => raceTests(kind));
}

/** A test on two fresh nodes joined by a `kind` bus, stopped after it. */
function nodeTest(kind: BusKind, title: string, body: (a: TestNode, b: TestNode) => Promise<void>) {
  test(title, { timeout: 60_000 }, async () => {
    const [a, b] = await twoNodes(kind);
    try {
      await body(a, b);
    } finally {
      await stopNodes([a, b]);
    }
  });
}

function raceTests(kind: BusKind): void {
  nodeTest(
    kind,
    "a change that crossed the bus before it reached Redis survives a resync",
    async (a, b) => {
      const t = "race/one";
      await changeSeen(b, a, t, "v1");

      const g = gate(b); // B's write of v2 waits behind the gate
      const written = change(b, t, "v2");
      // Whatever B's bus sends of v2 before Redis holds it has reached A now.
      await busDrained(b, a);
      busBack(a); // A resyncs and reads v1: Redis has no v2 yet
      await a.node.retainedSettled();
      await g.open();
      await written;
      await busDrained(b, a);
      assert.equal(payloadOn(b, t), "v2", "node B");
      assert.equal(await inRedis(t), "v2", "Redis");
      assert.equal(payloadOn(a, t), "v2", "node A ends with what B and Redis hold");
    },
  );

  nodeTest(
    kind,
    "changes made while the resync's read is held survive it, here and from the bus",
    async (a, b) => {
      const local = "race/local";
      const remote = "race/remote";
      await change(a, local, "old");
      await changeSeen(b, a, remote, "old");

      const g = gate(a); // A's resync reads Redis only once the gate opens
      busBack(a);
      await new Promise((r) => setTimeout(r, 50)); // the resync has begun: its reads wait
      // A change here: its write goes behind the resync's first read on the same connection.
      const mine = change(a, local, "new-on-a");
      // Another node's change heard now, whose Redis write lands only after A's read ran.
      a.handlers.message("002", {
        kind: "retained",
        topic: remote,
        message: retainedMessage(remote, "new-on-b"),
      });
      await g.open();
      await mine;
      await a.node.retainedSettled();
      assert.equal(payloadOn(a, local), "new-on-a", "A's own change");
      assert.equal(payloadOn(a, remote), "new-on-b", "the change heard from the bus");
      await busDrained(a, b);
      assert.equal(payloadOn(b, local), "new-on-a", "A's change reached B");
    },
  );

  nodeTest(
    kind,
    "a change whose store write failed reaches the others once the store is back",
    async (a, b) => {
      const t = "race/failed";
      await changeSeen(b, a, t, "v1");
      gate(b); // never opened: the connection is cut below
      const written = change(b, t, "v2");
      const clients = await admin!.client.sendCommand(["CLIENT", "LIST"]) as unknown;
      // B's store connection is the one blocked in BLPOP: cut it, so the write queued behind fails.
      const line = String(clients).split("\n").find((l) => l.includes("cmd=blpop"));
      assert.ok(line, "B's store connection is held in BLPOP");
      const clientId = /(?:^|\s)id=(\d+)/.exec(line)![1];
      await admin!.client.sendCommand(["CLIENT", "KILL", "ID", clientId]);
      await assert.rejects(written, "the write failed");
      await until(() => payloadOn(a, t) === "v2", "v2 reached A", 30_000);
      await until(async () => await inRedis(t) === "v2", "v2 in Redis (B's store caught up)");
    },
  );
}
