/**
 * A session moving back to a node that still has its previous copy of it (handed away, not yet
 * forgotten: the node it went to has not said `adopted`, or the sync after it is slow) must not
 * lose a QoS 2 message published on that node meanwhile.
 *
 * B held the session (its arriving window still open), handed it to A, and A's `adopted` is
 * late, so B's old session object stays in its index with the intercept leave() composed:
 * B's arrival dedupe || handOn(to A). The session now moves back to B: arrive() gives the new
 * arrival the old one's `seen` Set (the same object). A QoS 2 message published on B goes:
 *   - through B's old session: the dedupe adds its origin to that shared `seen`, then handOn hands
 *     it to A (or, adopted, drops it as A has it);
 *   - forwarded straight to A, where the leaving session hands it to B (the handed copy from B is
 *     dropped at A as a second copy);
 *   - B keeps the handed copy until it loaded the session, then delivers it through the new
 *     intercept, which finds the origin in `seen` ("a copy came first") and drops it.
 * The publisher got PUBREC (A answered after B did); the subscriber never gets the message.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { redisWithAdminForFile } from "./helpers/redis_server.ts";
import { PacketClient, publishPacket, str } from "./helpers/packet_client.ts";
import {
  type InProcessNode,
  startInProcessNode,
  stopNodes,
  until,
} from "./helpers/inprocess_node.ts";
import { sleep } from "./helpers/mqttjs.ts";

const redis = redisWithAdminForFile();
const skip = redis.skip;
const TOPIC = "seen/t";

const start = (id: string) =>
  startInProcessNode(redis.server().url, id, { prefix: "seen:cluster:", announce: true });

/** Connect "x" (persistent) on `on`, subscribing first if asked, then go offline. */
async function visit(on: InProcessNode, subscribe = false): Promise<void> {
  const { client, connack } = await PacketClient.connect(on.broker, {
    clientId: "x",
    clean: false,
  });
  if (!subscribe) assert.equal(connack.sessionPresent, true);
  if (subscribe) {
    client.send({ type: 8, packetId: 1, subscriptions: [{ topicFilter: TOPIC, qos: 2 }] });
    await client.expect(9);
  }
  client.send({ type: 14 }); // DISCONNECT
  await client.expectClosed();
  await on.broker.journal!.settled();
}

test(
  "a QoS 2 message published on a node the session returns to while its old copy lingers there is delivered",
  { skip, timeout: 90_000 },
  async () => {
    await redis.admin().client.sendCommand(["FLUSHDB"]);
    const a = await start("001");
    const b = await start("002");
    const c = await start("003");
    // A's `adopted` to B is held: B keeps its handed-away copy of the session (as when the
    // answer or the sync after it is slow under load). A's `released` can be held too.
    const busA = a.node["bus"];
    const sendA = busA.send.bind(busA);
    let holdReleased = false;
    const heldReleased: (() => void)[] = [];
    const heldAdopted: (() => void)[] = [];
    busA.send = (to, msg) => {
      if (msg.kind === "adopted" && to === "002") heldAdopted.push(() => sendA(to, msg));
      else if (msg.kind === "released" && holdReleased) heldReleased.push(() => sendA(to, msg));
      else sendA(to, msg);
    };
    try {
      await visit(a, true);
      await until(() => b.node["routes"].nodes(TOPIC).includes("001"), "A's route on B");
      await visit(b); // A -> B (B's arriving window opens)
      await until(() => a.node["routes"].nodes(TOPIC).includes("002"), "B's route on A");
      await visit(a); // B -> A; A's `adopted` held: B's old copy stays
      await until(() => b.node["routes"].nodes(TOPIC).includes("001"), "A's route on B again");
      assert.ok(b.broker.sessions.get("x"), "B still has its old copy");

      // Back to B; A hands over but its `released` is held, so B has not loaded the session yet.
      holdReleased = true;
      const moved = PacketClient.open(b.broker, { clientId: "x", clean: false });
      await until(() => heldReleased.length > 0, "A handed the session over (released held)");

      const { client: p } = await PacketClient.connect(b.broker, { clientId: "p" });
      p.send(publishPacket(TOPIC, "lost?", 2, 7));
      await sleep(300); // B forwards it to A, A hands it back to B, which keeps it while loading
      for (const r of heldReleased.splice(0)) r();

      assert.equal((await p.expect(5, 15_000)).packetId, 7, "PUBREC: taken");
      const connack = await moved.expect(2, 15_000);
      assert.equal((connack as { sessionPresent: boolean }).sessionPresent, true);
      const got = await moved.expect(3, 5_000).catch(() => undefined);
      assert.equal(got && str((got as { payload: Uint8Array }).payload), "lost?", "delivered");
      await moved.expectNothing(500); // once
    } finally {
      for (const r of heldAdopted.splice(0)) r();
      for (const r of heldReleased.splice(0)) r();
      await stopNodes(a, b, c);
    }
  },
);
