/**
 * A share group's member whose session ends with messages it never acknowledged: they go to
 * another member of the group [MQTT 5.0 4.8.2] also when every other member is on another node
 * (they used to be lost there, their publisher acknowledged). Two in-process nodes on a real
 * redis-server; the member on A is a raw client that never answers. A member that is offline
 * takes them only when the session ends (until then they wait for their member).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { redisWithAdminForFile } from "./helpers/redis_server.ts";
import { PacketClient, publishPacket, str } from "./helpers/packet_client.ts";
import { startInProcessNode, stopNodes, until } from "./helpers/inprocess_node.ts";

const redis = redisWithAdminForFile();
const skip = redis.skip;
const FILTER = "$share/g/s/t";
const N = 6;

const start = (id: string) =>
  startInProcessNode(redis.server().url, id, {
    prefix: "sharehand:cluster:",
    announce: true,
    broker: { ignoreClientSelfPub: true },
  });
type Node = Awaited<ReturnType<typeof start>>;

/** Runs `body` on fresh nodes (two, or three), stopped after it. */
async function onNodes(n: 2 | 3, body: (a: Node, b: Node, c: Node) => Promise<void>) {
  await redis.admin().client.sendCommand(["FLUSHDB"]);
  const nodes: Node[] = [];
  try {
    for (let i = 1; i <= n; i++) nodes.push(await start(`00${i}`));
    await body(nodes[0], nodes[1], nodes[2]);
  } finally {
    await stopNodes(...nodes);
  }
}

/** A member of FILTER on `on` (QoS 1). */
async function member(on: Node, clientId: string, clean = true): Promise<PacketClient> {
  const { client } = await PacketClient.connect(on.broker, { clientId, clean });
  client.send({ type: 8, packetId: 1, subscriptions: [{ topicFilter: FILTER, qos: 1 }] });
  await client.expect(9);
  return client;
}

/** `p` publishes N QoS 1 messages on s/t, each acknowledged. */
async function publishAll(p: PacketClient): Promise<void> {
  for (let i = 0; i < N; i++) {
    p.send(publishPacket("s/t", `m${i}`, 1, i + 1));
    assert.equal((await p.expect(4, 15_000)).packetId, i + 1, "PUBACK");
  }
}

/** `silent` has all N unacknowledged; its clean session ends: what it held. */
async function endHolding(silent: PacketClient, what: string): Promise<string[]> {
  const publishes = () => silent.pending().filter((x) => x.type === 3);
  await until(() => publishes().length === N, what);
  const held = publishes().map((x) => str(x.payload!));
  silent.drop();
  await silent.expectClosed();
  return held;
}

/** The offline member `clientId` comes back on `on`: what it gets, each acknowledged. */
async function comeBack(on: Node, clientId: string): Promise<string[]> {
  const { client } = await PacketClient.connect(on.broker, { clientId, clean: false });
  const got: string[] = [];
  for (;;) {
    const m = await client.expect(3, 3_000).catch(() => undefined);
    if (!m) return got;
    got.push(str(m.payload));
    client.send({ type: 4, packetId: m.packetId! });
  }
}

test(
  "a member's unacknowledged shared messages go to a member on another node when it leaves",
  { skip, timeout: 90_000 },
  () =>
    onNodes(2, async (a, b) => {
      const silent = await member(a, "m1"); // never acknowledges
      const other = await member(b, "m2");
      await until(
        () => {
          const routes = a.node["routes"];
          return routes.shares("s/t").some((r) => r.node === "002" && routes.online(r));
        },
        "B's member known on A, online",
      );
      const { client: p } = await PacketClient.connect(a.broker, { clientId: "p" });
      await publishAll(p);
      // Round robin over the two nodes: some went to the silent member, the rest to B's.
      const got = new Set<string>();
      const take = async (ms: number) => {
        for (;;) {
          const packet = await other.expect(3, ms).catch(() => undefined);
          if (!packet) return;
          got.add(str(packet.payload));
          other.send({ type: 4, packetId: packet.packetId! });
        }
      };
      await take(1_000);
      assert.ok(got.size < N, `some went to the member on A (B has ${got.size} of ${N})`);
      silent.drop(); // a clean session: it ends, with what it did not acknowledge
      await silent.expectClosed();
      await take(3_000);
      assert.deepEqual([...got].sort(), Array.from({ length: N }, (_, i) => `m${i}`).sort());
    }),
);

test(
  "a member's session that ends with only offline members elsewhere: they wait for one of them",
  { skip, timeout: 90_000 },
  () =>
    onNodes(2, async (a, b) => {
      const away = await member(b, "m2", false);
      away.drop(); // offline, its session kept
      await away.expectClosed();
      await until(() => {
        const routes = a.node["routes"];
        return routes.shares("s/t").some((r) => r.node === "002" && !routes.online(r));
      }, "B's member known on A, offline");
      const silent = await member(a, "m1"); // never acknowledges
      const { client: p } = await PacketClient.connect(a.broker, { clientId: "p" });
      await publishAll(p);
      // All to the online member (B's is offline); they stay with it while it is only offline.
      const held = await endHolding(silent, "every message to the online member");
      const got = await comeBack(b, "m2");
      assert.deepEqual(got.sort(), held.sort());
    }),
);

test(
  "ignore-client-self-pub: a node whose only online member is the publisher passes them on",
  { skip, timeout: 90_000 },
  () =>
    onNodes(3, async (a, b, c) => {
      // A: the publisher, a member too; B: a member that never acknowledges; C: one offline.
      const away = await member(c, "m3", false);
      away.drop();
      await away.expectClosed();
      const silent = await member(b, "m2");
      const self = await member(a, "p");
      await until(() => {
        const routes = a.node["routes"];
        const shares = routes.shares("s/t");
        return shares.some((r) => r.node === "002" && routes.online(r)) &&
          shares.some((r) => r.node === "003");
      }, "B's member known on A, online, and C's");
      await until(() => {
        const routes = b.node["routes"];
        return routes.shares("s/t").some((r) => r.node === "001" && routes.online(r));
      }, "A's member known on B, online");
      await publishAll(self);
      // B's member ends: A has the only online member, its publisher, which may not take them.
      const held = await endHolding(silent, "every message to B's member (A's publishes)");
      const got = await comeBack(c, "m3");
      assert.deepEqual(got.sort(), held.sort(), "C's offline member has them");
    }),
);
