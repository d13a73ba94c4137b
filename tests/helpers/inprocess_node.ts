/**
 * A cluster node in the test's own process (Broker, Redis store, Redis bus, ClusterNode) on a
 * real redis-server, whose session store a test can make fail or hold, and whose bus sends it
 * can watch: for tests that need to stop a node between two steps (a batch written, an answer
 * sent), which a separate process cannot show.
 */
import { Broker } from "../../src/broker/broker.ts";
import type { BrokerHooks } from "../../src/broker/hooks.ts";
import type { BrokerOptions } from "../../src/broker/api.ts";
import { ClusterNode } from "../../src/cluster/node.ts";
import { RedisBus } from "../../src/cluster/redis.ts";
import type { BusMessage, NodeId } from "../../src/cluster/types.ts";
import type { RedisStore } from "../../src/store/redis.ts";
import { openRedisStore, type redisWithAdminForFile } from "./redis_server.ts";
import { PacketClient, testBrokerOptions } from "./packet_client.ts";

/** What the test controls of a node's session store. */
export interface StoreControl {
  /** While set, every session batch fails. */
  failing: boolean;
  /** While set, the next batch waits for it, then is written (`entered` counts those). */
  gate?: Promise<void>;
  entered: number;
}

export interface InProcessNode {
  store: RedisStore;
  broker: Broker;
  node: ClusterNode;
  bus: RedisBus;
  ctl: StoreControl;
}

export interface NodeOptions {
  /** Key prefix of the bus in Redis (one per test file). */
  prefix: string;
  /** Announce the restored sessions' routes as app.ts does after start (default false). */
  announce?: boolean;
  /** Broker options other than the defaults of testBrokerOptions. */
  broker?: Partial<BrokerOptions>;
  /** Sees every message the node sends one other node, before it goes. */
  onSend?: (to: NodeId, msg: BusMessage) => void;
}

export async function startInProcessNode(
  url: string,
  id: string,
  o: NodeOptions,
): Promise<InProcessNode> {
  const store = await openRedisStore(url);
  const ctl: StoreControl = { failing: false, entered: 0 };
  const write = store.sessions.write.bind(store.sessions);
  store.sessions.write = async (batch) => {
    const gate = ctl.gate;
    if (gate) {
      ctl.gate = undefined;
      ctl.entered++;
      await gate;
      return write(batch);
    }
    if (ctl.failing) throw new Error("store down (test)");
    return write(batch);
  };
  // The node's hooks go in as app.ts puts them (the broker reads this array by reference).
  const hooks: BrokerHooks[] = [];
  const broker = new Broker(testBrokerOptions({ brokerId: id, hooks, ...o.broker }), store);
  const bus = new RedisBus({
    url,
    nodeId: id,
    heartbeatInterval: 100,
    nodeTimeout: 5_000,
    prefix: o.prefix,
  });
  const onSend = o.onSend;
  if (onSend) {
    const send = bus.send.bind(bus);
    bus.send = (to, msg) => {
      onSend(to, msg);
      send(to, msg);
    };
  }
  const node = new ClusterNode(broker, bus, store, "round", 5_000);
  // As start.ts: a client's session writes go through only while this node is its writer.
  store.sessions.fence = { writers: bus.writers, want: () => " " + id };
  store.sessions.onFenced = (ids, lost) => node.fenced(ids, lost);
  await node.start();
  hooks.push(node.hooks());
  if (o.announce) node.announceRestored();
  return { store, broker, node, bus, ctl };
}

export async function stopNodes(...nodes: InProcessNode[]): Promise<void> {
  for (const n of nodes) {
    await n.node.stop();
    await n.broker.close();
  }
}

export async function until(cond: () => boolean, what: string, ms = 20_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out: ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/**
 * Nodes "001" and "002" (bus prefix `prefix`) on the file's Redis, flushed first; both stopped
 * after `body`.
 */
export async function withTwoNodes(
  redis: ReturnType<typeof redisWithAdminForFile>,
  prefix: string,
  body: (a: InProcessNode, b: InProcessNode) => Promise<void>,
): Promise<void> {
  await redis.admin().client.sendCommand(["FLUSHDB"]);
  const o = { prefix, announce: true };
  const a = await startInProcessNode(redis.server().url, "001", o);
  const b = await startInProcessNode(redis.server().url, "002", o);
  try {
    await body(a, b);
  } finally {
    await stopNodes(a, b);
  }
}

/** A persistent session of `clientId` on `node`, subscribed to `filter` (QoS 1), its client gone. */
export async function offlineSession(
  node: InProcessNode,
  clientId: string,
  filter: string,
): Promise<void> {
  const { client } = await PacketClient.connect(node.broker, { clientId, clean: false });
  client.send({ type: 8, packetId: 1, subscriptions: [{ topicFilter: filter, qos: 1 }] });
  await client.expect(9);
  client.drop();
  await client.expectClosed();
}
