/**
 * One fenced client costs only itself (and the batch it was written in): a node whose store
 * write was refused for one client (another node writes it now) stored everything else in that
 * write, so it is not "behind". It used to count every client of the batch as not stored and
 * refuse, for about a second, each QoS 1/2 message another node sent it for a persistent
 * session, as if Redis were down.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { redisWithAdminForFile } from "./helpers/redis_server.ts";
import { PacketClient, publishPacket } from "./helpers/packet_client.ts";
import { offlineSession, withTwoNodes } from "./helpers/inprocess_node.ts";

const redis = redisWithAdminForFile();

test("a client fenced on a node does not refuse other sessions' messages from other nodes", {
  skip: redis.skip,
  timeout: 60_000,
}, () =>
  withTwoNodes(redis, "fencedothers:cluster:", async (a, b) => {
    await offlineSession(a, "fs", "f/#");
    const { client: o } = await PacketClient.connect(a.broker, { clientId: "o", clean: false });
    o.send({ type: 8, packetId: 1, subscriptions: [{ topicFilter: "g/#", qos: 1 }] });
    await o.expect(9);
    const { client: pb } = await PacketClient.connect(b.broker, {
      clientId: "pb",
      protocolVersion: 5,
    });
    // Until node B has o's route: a QoS 0 probe from B reaches o.
    for (let seen = false; !seen;) {
      pb.send(publishPacket("g/probe", "probe", 0));
      seen = (await o.next(200).catch(() => undefined))?.type === 3;
    }
    while ((await o.next(100).catch(() => undefined)) !== undefined);

    // Another node (003) writes fs now and A was not told: A's next write of fs is refused.
    await redis.admin().client.sendCommand(["HSET", a.bus.writers, "fs", "1 003"]);
    const { client: pa } = await PacketClient.connect(a.broker, { clientId: "pa" });
    pa.send(publishPacket("f/x", "for fs", 1, 1));
    await pa.expectClosed(10_000); // not kept for fs: a 3.1.1 publisher is closed

    // A message for o from node B, right after: stored on A as usual, so acknowledged.
    pb.send(publishPacket("g/x", "for o", 1, 7));
    const ack = await pb.expect(4, 10_000);
    assert.equal(ack.packetId, 7);
    assert.ok((ack.reasonCode ?? 0) < 0x80, `acknowledged, not refused (${ack.reasonCode})`);
  }));
