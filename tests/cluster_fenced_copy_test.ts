/**
 * A session whose store write was refused (another node writes it now: the fence) is dropped
 * here once what is being written settled (takeover.ts fenced). Until then a message for it
 * reached a copy that nothing stores: it was queued in memory, its publisher acknowledged, and
 * the copy forgotten a moment later (a stress run lost a QoS 1 message so, after node A logged
 * "a write from here was refused"). Its publisher is now refused instead, and resends.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { redisWithAdminForFile } from "./helpers/redis_server.ts";
import { PacketClient, publishPacket } from "./helpers/packet_client.ts";
import { startInProcessNode, stopNodes, until } from "./helpers/inprocess_node.ts";

const redis = redisWithAdminForFile();
const skip = redis.skip;

const start = (id: string) =>
  startInProcessNode(redis.server().url, id, { prefix: "fenced:cluster:", announce: true });

test("a message for a fenced session's copy is not acknowledged while the copy goes", {
  skip,
  timeout: 60_000,
}, async () => {
  await redis.admin().client.sendCommand(["FLUSHDB"]);
  const a = await start("001");
  const b = await start("002");
  let open = () => {};
  try {
    const journal = a.broker.journal!;
    const { client: s } = await PacketClient.connect(a.broker, { clientId: "fs", clean: false });
    s.send({ type: 8, packetId: 1, subscriptions: [{ topicFilter: "f/#", qos: 1 }] });
    await s.expect(9);
    s.drop();
    await s.expectClosed();
    const { client: other } = await PacketClient.connect(a.broker, { clientId: "o", clean: false });
    const { client: p } = await PacketClient.connect(a.broker, {
      clientId: "p",
      protocolVersion: 5,
    });
    await journal.settled();
    // A batch on its way (held): the fenced copy waits for it before it is dropped.
    a.ctl.gate = new Promise((r) => open = r);
    other.send({ type: 8, packetId: 1, subscriptions: [{ topicFilter: "x/1", qos: 1 }] });
    await until(() => a.ctl.entered === 1, "a batch written");
    a.node.fenced(["fs"]); // (as when the store refuses a write of "fs" from here)
    p.send(publishPacket("f/x", "m", 1, 5));
    await new Promise((r) => setTimeout(r, 100));
    open();
    const ack = await p.expect(4, 15_000);
    assert.equal(ack.packetId, 5);
    assert.ok((ack.reasonCode ?? 0) >= 0x80, `refused, not acknowledged (${ack.reasonCode})`);
    await until(() => !a.broker.sessions.has("fs"), "the copy dropped");
  } finally {
    open();
    await stopNodes(a, b);
  }
});
