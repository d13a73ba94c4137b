/**
 * A resent QoS 2 message whose first copy's session batch failed on the receiving node, with
 * two in-process nodes (Broker, Redis store, Redis bus, ClusterNode) on a real redis-server.
 *
 * Node B takes the first copy (qos2_resend.ts) and routes it to an offline persistent
 * session; B's batch fails, so B answers not-ok and node A closes its 3.1.1 publisher. The
 * resend reaches B as taken already: B must not answer "kept" while that session is left
 * behind (its copy only in B's memory) — only once the rewrite of the session is stored.
 *
 * And a message B gives no persistent session is answered at once, not refused because the
 * batch open when it came (holding only other sessions' changes) failed.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import type { Packet } from "../src/mqtt/packet.ts";
import { redisWithAdminForFile } from "./helpers/redis_server.ts";
import { PacketClient, text } from "./helpers/packet_client.ts";
import {
  type InProcessNode,
  startInProcessNode,
  stopNodes,
  until,
} from "./helpers/inprocess_node.ts";

const redis = redisWithAdminForFile();
const skip = redis.skip;

type TestNode = InProcessNode;
const startNode = (id: string) =>
  startInProcessNode(redis.server().url, id, { prefix: "resend:cluster:" });

const publish = (topic: string, qos: 0 | 1 | 2, packetId?: number, dup = false): Packet =>
  ({ type: 3, topic, payload: text("hello"), qos, retain: false, dup, packetId }) as Packet;

/** The topics of what B's store holds for session `clientId` (QoS 0 probes may be among them). */
async function storedTopics(clientId: string): Promise<string[]> {
  const state = await redis.admin().sessions.load();
  const s = state.sessions.find((x) => x.clientId === clientId);
  const ids = [...(s?.queue ?? []), ...(s?.inflight ?? [])].map((d) => d.messageId);
  return ids.map((id) => state.messages.get(id)?.topic ?? "?");
}

/** Resend the QoS 2 message as a reconnected 3.1.1 publisher: PUBREC, or closed. */
async function resend(a: TestNode): Promise<"pubrec" | "closed"> {
  const { client } = await PacketClient.connect(a.broker, { clientId: "p" });
  client.send(publish("q2/1", 2, 5, true));
  try {
    const got = await client.next(15_000);
    assert.equal(got.type, 5, JSON.stringify(got));
    client.drop();
    return "pubrec";
  } catch (e) {
    if (client.closed) return "closed";
    throw e;
  }
}

test("a resend taken already is acknowledged only once its first copy is stored", {
  skip,
  timeout: 90_000,
}, async () => {
  await redis.admin().client.sendCommand(["FLUSHDB"]);
  const a = await startNode("001");
  const b = await startNode("002");
  try {
    // A persistent subscriber on B; A knows its route once a QoS 0 probe crosses.
    const { client: sub } = await PacketClient.connect(b.broker, { clientId: "s", clean: false });
    sub.send({ type: 8, packetId: 1, subscriptions: [{ topicFilter: "q2/#", qos: 2 }] });
    await sub.expect(9);
    const { client: p } = await PacketClient.connect(a.broker, { clientId: "p" });
    await until(() => {
      p.send(publish("q2/probe", 0));
      return sub.pending().some((x) => x.type === 3);
    }, "the route to B");
    sub.drop();
    await sub.expectClosed();
    await b.broker.journal!.settled();

    // The first copy: B's batch fails, B answers not-ok, A closes the publisher.
    b.ctl.failing = true;
    p.send(publish("q2/1", 2, 5));
    await p.expectClosed(15_000);
    assert.ok(!p.pending().some((x) => x.type === 5), "no PUBREC for the first copy");
    assert.ok(!(await storedTopics("s")).includes("q2/1"));

    // The resend while B's session is still behind: not acknowledged.
    assert.equal(await resend(a), "closed", "PUBREC while the subscriber's copy is not stored");

    // The store is back: a resend is acknowledged once the rewrite holding the copy is stored.
    b.ctl.failing = false;
    let answer = await resend(a);
    while (answer === "closed") {
      await new Promise((r) => setTimeout(r, 50));
      answer = await resend(a);
    }
    assert.ok((await storedTopics("s")).includes("q2/1"), "PUBREC before the copy is stored");
  } finally {
    await stopNodes(a, b);
  }
});

test("a message no persistent session here got: answered whatever the open batch does", {
  skip,
  timeout: 90_000,
}, async () => {
  await redis.admin().client.sendCommand(["FLUSHDB"]);
  const a = await startNode("001");
  const b = await startNode("002");
  let open = () => {};
  try {
    // A clean subscriber on B (nothing to store), and a persistent session there.
    const { client: sub } = await PacketClient.connect(b.broker, { clientId: "c" });
    sub.send({ type: 8, packetId: 1, subscriptions: [{ topicFilter: "q1/#", qos: 1 }] });
    await sub.expect(9);
    const { client: p } = await PacketClient.connect(a.broker, { clientId: "p" });
    await until(() => {
      p.send(publish("q1/probe", 0));
      return sub.pending().some((x) => x.type === 3);
    }, "the route to B");
    const journal = b.broker.journal!;
    const { client: other } = await PacketClient.connect(b.broker, {
      clientId: "o",
      clean: false,
    });
    await journal.settled();

    // A batch of "o"'s is written (held); the next gathers another persistent session's.
    b.ctl.gate = new Promise((r) => open = r);
    other.send({ type: 8, packetId: 1, subscriptions: [{ topicFilter: "x/1", qos: 1 }] });
    await until(() => b.ctl.entered === 1, "a batch written");
    // (Not "o" again: its connection waits for its SUBACK.)
    const late = PacketClient.connect(b.broker, { clientId: "o2", clean: false });
    late.catch(() => {}); // its session is not stored: closed
    await until(() => journal.whenStored() !== undefined, "the next batch open");
    b.ctl.failing = true; // that next batch fails

    // The message comes while that batch is open, and goes to the clean subscriber only.
    const seen = sub.pending().length;
    p.send(publish("q1/x", 1, 9));
    const delivered = (x: Packet) => x.type === 3 && x.topic === "q1/x";
    await until(() => sub.pending().slice(seen).some(delivered), "the delivery");
    open();
    const ack = await p.expect(4, 15_000);
    assert.equal(ack.packetId, 9);
    b.ctl.failing = false;
  } finally {
    open();
    b.ctl.failing = false;
    await stopNodes(a, b);
  }
});
