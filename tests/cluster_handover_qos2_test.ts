/**
 * QoS 2 once while a session moves (src/cluster/handover.ts): a message from a third node that
 * reaches both the session's old node, which hands it on, and its new node, straight, is
 * delivered once. Three in-process nodes on a real redis-server; the new node's `adopted` is
 * held back, so the old node keeps its route and the third node sends to both (in a real
 * cluster a window of a few ms).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import type { BusMessage, NodeId } from "../src/cluster/types.ts";
import type { Packet } from "../src/mqtt/packet.ts";
import { redisWithAdminForFile } from "./helpers/redis_server.ts";
import { PacketClient, str, text } from "./helpers/packet_client.ts";
import { startInProcessNode, stopNodes, until } from "./helpers/inprocess_node.ts";

const redis = redisWithAdminForFile();
const skip = redis.skip;
const TOPIC = "h/t";

const start = (id: string, onSend?: (to: NodeId, msg: BusMessage) => void) =>
  startInProcessNode(redis.server().url, id, {
    prefix: "handover:cluster:",
    announce: true,
    onSend,
  });

test(
  "a QoS 2 message reaching a moving session both straight and handed on is delivered once",
  { skip, timeout: 90_000 },
  async () => {
    await redis.admin().client.sendCommand(["FLUSHDB"]);
    const handed: string[] = [];
    const a = await start("001", (_, msg) => {
      if (msg.kind === "handed") handed.push(str(msg.message.payload));
    });
    const b = await start("002");
    const c = await start("003");
    // B's `adopted` waits: A keeps handing on with its route still out.
    const bus = b.node["bus"];
    const send = bus.send.bind(bus);
    const held: (() => void)[] = [];
    bus.send = (to, msg) => {
      if (msg.kind === "adopted") held.push(() => send(to, msg));
      else send(to, msg);
    };
    try {
      // The persistent session on A, offline.
      const { client: first } = await PacketClient.connect(a.broker, {
        clientId: "x",
        clean: false,
      });
      first.send({ type: 8, packetId: 1, subscriptions: [{ topicFilter: TOPIC, qos: 2 }] });
      await first.expect(9);
      first.drop();
      await first.expectClosed();
      await a.broker.journal!.settled();
      const routesOnC = () => c.node["routes"].nodes(TOPIC);
      await until(() => routesOnC().includes("001"), "A's route on C");

      // Its client on B: B loads the session and announces its route; A's stays (held back).
      const { client: moved, connack } = await PacketClient.connect(b.broker, {
        clientId: "x",
        clean: false,
      });
      assert.equal(connack.sessionPresent, true);
      await until(() => routesOnC().includes("002"), "B's route on C");
      assert.ok(routesOnC().includes("001"), "A's route still on C");

      const { client: p } = await PacketClient.connect(c.broker, { clientId: "p" });
      p.send({
        type: 3,
        topic: TOPIC,
        payload: text("once"),
        qos: 2,
        retain: false,
        dup: false,
        packetId: 7,
      } as Packet);
      assert.equal((await p.expect(5, 15_000)).packetId, 7, "PUBREC: A and B stored it");
      assert.deepEqual(handed, ["once"], "A handed its copy on to B");
      const got = await moved.expect(3, 15_000);
      assert.equal(str(got.payload), "once");
      await moved.expectNothing(1_000); // and no second copy
    } finally {
      for (const release of held) release();
      await stopNodes(a, b, c);
    }
  },
);
