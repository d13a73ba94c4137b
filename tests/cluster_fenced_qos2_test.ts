/**
 * A QoS 2 message that a fenced copy took (its store write refused: another node writes the
 * session now) is not lost for that session. Its publisher is refused and sends it again, but
 * the publisher's own part of the refused batch was stored (the packet id, [MQTT-4.3.3-2]), so
 * the resend is taken as the duplicate it is for every other subscriber and routed nowhere: the
 * fenced session's copy of it was lost. Now the copy hands such deliveries on to the session's
 * new holder, and the resend's PUBREC waits until it has them; the new holder gets it once, also
 * when the message reached it straight from the publisher's node as well.
 */
import { test } from "node:test";
import type { Packet } from "../src/mqtt/packet.ts";
import assert from "node:assert/strict";
import { redisWithAdminForFile } from "./helpers/redis_server.ts";
import { PacketClient, publishPacket, str } from "./helpers/packet_client.ts";
import type { Takeover } from "../src/cluster/takeover.ts";
import { type InProcessNode, offlineSession, withTwoNodes } from "./helpers/inprocess_node.ts";

const redis = redisWithAdminForFile();
const skip = redis.skip;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const PREFIX = "fencedqos2:cluster:";

/** Publish QoS 2 `payload` (packet id 1) from persistent client "p" on `node`; its answer. */
async function publishQos2(node: InProcessNode, payload: string, dup = false) {
  const { client: p, connack } = await PacketClient.connect(node.broker, {
    clientId: "p",
    clean: false,
  });
  const packet = publishPacket("f/x", payload, 2, 1);
  p.send(dup ? { ...packet, dup: true } : packet);
  const answer = await p.next(15_000).catch(() => undefined);
  if (answer?.type === 5) {
    p.send({ type: 6, packetId: 1 }); // PUBREL
    await p.expect(7); // PUBCOMP
  }
  p.drop();
  await p.expectClosed().catch(() => {});
  return { answer, sessionPresent: connack.sessionPresent };
}

/** The payloads `s` gets within `ms` of quiet, acknowledged as they come. */
async function received(s: PacketClient, ms = 1_500): Promise<string[]> {
  const got: string[] = [];
  for (;;) {
    const m = await s.expect(3, ms).catch(() => undefined);
    if (!m) return got;
    got.push(str(m.payload));
    if (m.qos === 1) s.send({ type: 4, packetId: m.packetId! });
    if (m.qos === 2) s.send({ type: 5, packetId: m.packetId! });
  }
}

/**
 * "fs" subscribed to f/# on A, offline; another node (003, gone) is its writer and A was not
 * told (as when A missed a kick), so A's write of a delivery to it is refused.
 */
async function refusedOnA(a: InProcessNode) {
  await offlineSession(a, "fs", "f/#");
  await redis.admin().client.sendCommand(["HSET", a.bus.writers, "fs", "1 003"]);
  const first = await publishQos2(a, "m0");
  assert.notEqual(first.answer?.type, 5, "PUBREC for a message its session's store refused");
}

test("a QoS 2 message a fenced copy took reaches the session's new holder once", {
  skip,
  timeout: 60_000,
}, () =>
  withTwoNodes(redis, PREFIX, async (a, b) => {
    await refusedOnA(a);
    // fs comes back on B: B takes the session over from A, which hands on what it holds.
    const { client: s2, connack } = await PacketClient.connect(b.broker, {
      clientId: "fs",
      clean: false,
    });
    assert.equal(connack.sessionPresent, true);
    // The publisher sends it again (same packet id, DUP): acknowledged, and once B has it.
    const again = await publishQos2(a, "m0", true);
    assert.equal(again.sessionPresent, true);
    assert.equal(again.answer?.type, 5, `PUBREC for the resend (got ${again.answer?.type})`);
    assert.ok((again.answer?.reasonCode ?? 0) < 0x80, "the resend refused");
    assert.deepEqual(await received(s2), ["m0"], "fs on B: m0 exactly once");
  }));

test("a QoS 2 message that also reached the new holder straight is not delivered twice", {
  skip,
  timeout: 60_000,
}, () =>
  withTwoNodes(redis, PREFIX, async (a, b) => {
    await offlineSession(a, "fs", "f/#");
    // A misses B's kick (a stall): B takes fs over after node-timeout, and A keeps its copy.
    const takeovers = (a.node as unknown as { takeovers: Takeover }).takeovers;
    takeovers.kick = () => {};
    const s2 = PacketClient.open(b.broker, { clientId: "fs", clean: false });
    const connack = await s2.expect(2, 15_000); // B waits node-timeout for A's answer
    assert.equal(connack.sessionPresent, true);
    await sleep(300); // A has B's route for fs
    // A routes m0 to its copy (the write is refused) and to B, where fs gets it.
    const first = await publishQos2(a, "m0");
    assert.notEqual(first.answer?.type, 5, "PUBREC for a message its session's store refused");
    const again = await publishQos2(a, "m0", true);
    assert.equal(again.answer?.type, 5, `PUBREC for the resend (got ${again.answer?.type})`);
    assert.deepEqual(await received(s2), ["m0"], "fs on B: m0 exactly once");
  }));

test("the resend waits until the new holder has the message; acknowledgements keep order", {
  skip,
  timeout: 60_000,
}, () =>
  withTwoNodes(redis, PREFIX, async (a, b) => {
    await refusedOnA(a);
    // Sent again before any node has fs: its copy on A knows nowhere to hand m0 yet.
    const { client: p } = await PacketClient.connect(a.broker, { clientId: "p", clean: false });
    p.send({ ...publishPacket("f/x", "m0", 2, 1), dup: true });
    p.send(publishPacket("g/y", "other", 1, 2)); // its PUBACK may not overtake [MQTT-4.6.0-2]
    const early = await p.next(500).catch(() => undefined);
    assert.equal(early, undefined, `answered before fs's holder had m0 (type ${early?.type})`);
    const { client: s2, connack } = await PacketClient.connect(b.broker, {
      clientId: "fs",
      clean: false,
    });
    assert.equal(connack.sessionPresent, true);
    const idOf = (x: Packet) => "packetId" in x ? x.packetId : undefined;
    const first = await p.next(15_000);
    assert.deepEqual([first.type, idOf(first)], [5, 1], "PUBREC for m0 first");
    const second = await p.next(5_000);
    assert.deepEqual([second.type, idOf(second)], [4, 2], "then the PUBACK");
    assert.deepEqual(await received(s2), ["m0"], "fs on B: m0 exactly once");
  }));

test("a clean publisher's resend is routed again, and not handed on as well", {
  skip,
  timeout: 60_000,
}, () =>
  withTwoNodes(redis, PREFIX, async (a, b) => {
    await offlineSession(a, "fs", "f/#");
    await redis.admin().client.sendCommand(["HSET", a.bus.writers, "fs", "1 003"]);
    const send = async () => {
      const { client: c } = await PacketClient.connect(a.broker, { clientId: "pc" });
      c.send(publishPacket("f/x", "m0", 2, 1));
      const answer = await c.next(15_000).catch(() => undefined);
      c.drop();
      return answer;
    };
    assert.notEqual((await send())?.type, 5, "PUBREC for a message its session's store refused");
    const { client: s2 } = await PacketClient.connect(b.broker, { clientId: "fs", clean: false });
    await sleep(500); // A handed the session on
    assert.equal((await send())?.type, 5, "the clean publisher's new send is acknowledged");
    assert.deepEqual(await received(s2), ["m0"], "fs on B: m0 exactly once");
  }));

test("a refused rewrite of a whole session hands on none of what its holder loaded", {
  skip,
  timeout: 60_000,
}, () =>
  withTwoNodes(redis, PREFIX, async (a, b) => {
    await offlineSession(a, "fs", "f/#");
    assert.equal((await publishQos2(a, "m1")).answer?.type, 5, "m1 stored for fs");
    // A batch with a delivery to fs fails (Redis down a moment): fs is rewritten in full later.
    a.ctl.failing = true;
    const { client: q } = await PacketClient.connect(a.broker, { clientId: "q", clean: false });
    q.send(publishPacket("f/x", "m2", 1, 1));
    await q.expectClosed(10_000); // not acknowledged
    await redis.admin().client.sendCommand(["HSET", a.bus.writers, "fs", "1 003"]);
    a.ctl.failing = false;
    await sleep(2_500); // the rewrite (m1 with it) is refused by the fence
    const { client: s2 } = await PacketClient.connect(b.broker, { clientId: "fs", clean: false });
    assert.deepEqual(await received(s2), ["m1"], "fs on B: m1 exactly once");
  }));
