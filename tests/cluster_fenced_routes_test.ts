/**
 * A fenced session's copy (a write of it from here was refused: another node writes it now) is
 * dropped only once the client's new holder announced the session's routes here. Dropped as soon
 * as what was being written settled, it left a window in which a message published here for the
 * session matched nothing at all: acknowledged and lost (a CI run of the session-move test lost a
 * QoS 2 message so, after "a write from here was refused"). While the copy stays, such a message
 * is refused and its publisher resends; once the new holder's routes are seen, it goes there.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { redisWithAdminForFile } from "./helpers/redis_server.ts";
import { PacketClient, publishPacket, str } from "./helpers/packet_client.ts";
import { startInProcessNode, stopNodes, until } from "./helpers/inprocess_node.ts";

const redis = redisWithAdminForFile();
const skip = redis.skip;

const start = (id: string) =>
  startInProcessNode(redis.server().url, id, { prefix: "fencedroutes:cluster:", announce: true });

test(
  "a message for a fenced session published before its new holder's routes are seen is not lost",
  {
    skip,
    timeout: 60_000,
  },
  async () => {
    await redis.admin().client.sendCommand(["FLUSHDB"]);
    const a = await start("001");
    const b = await start("002");
    try {
      const { client: s } = await PacketClient.connect(a.broker, { clientId: "fs", clean: false });
      s.send({ type: 8, packetId: 1, subscriptions: [{ topicFilter: "f/#", qos: 1 }] });
      await s.expect(9);
      s.drop();
      await s.expectClosed();
      // Another node (003, gone) is the client's writer, and A was not told (as when A missed
      // the kick): A's writes of it are refused. A is still its owner: B's CONNECT kicks A.
      await redis.admin().client.sendCommand(["HSET", a.bus.writers, "fs", "1 003"]);

      const acked: string[] = [];
      let p: PacketClient | undefined;
      /** Publish once on A; counted as acknowledged unless refused (a failed store write closes
       * the publisher's connection: it resends on a new one). */
      const publish = async (payload: string) => {
        if (!p || p.closed) p = (await PacketClient.connect(a.broker, { clientId: "p" })).client;
        p.send(publishPacket("f/x", payload, 1, 1));
        const ack = await p.next(15_000).catch(() => undefined);
        if (ack?.type !== 4) return false;
        acked.push(payload);
        return true;
      };
      // A's write of the delivery is refused: the copy is fenced, the publisher refused.
      assert.equal(await publish("m0"), false, "the write from A is refused");
      await new Promise((r) => setTimeout(r, 200)); // what A was writing settled long since
      await publish("m1"); // must not match nothing here: refused, or delivered later

      const { client: s2, connack } = await PacketClient.connect(b.broker, {
        clientId: "fs",
        clean: false,
      });
      assert.equal(connack.sessionPresent, true);
      for (let i = 2; !(await publish(`m${i}`)); i++) {
        await new Promise((r) => setTimeout(r, 50)); // refused: resent until B's routes are seen
      }
      const got = new Set<string>();
      while (!acked.every((m) => got.has(m))) {
        const m = await s2.expect(3, 10_000).catch(() => undefined);
        if (!m) break;
        got.add(str(m.payload));
        if (m.packetId !== undefined) s2.send({ type: 4, packetId: m.packetId });
      }
      assert.deepEqual(acked.filter((m) => !got.has(m)), [], "acknowledged and never delivered");
      await until(() => !a.broker.sessions.has("fs"), "the fenced copy dropped");
    } finally {
      await stopNodes(a, b);
    }
  },
);
