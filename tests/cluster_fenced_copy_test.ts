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
import { PacketClient, publishPacket, text } from "./helpers/packet_client.ts";
import { offlineSession, until, withTwoNodes } from "./helpers/inprocess_node.ts";

const redis = redisWithAdminForFile();
const skip = redis.skip;

const PREFIX = "fenced:cluster:";

test("a message for a fenced session's copy is not acknowledged while the copy goes", {
  skip,
  timeout: 60_000,
}, async () => {
  let open = () => {};
  await withTwoNodes(redis, PREFIX, async (a) => {
    const journal = a.broker.journal!;
    await offlineSession(a, "fs", "f/#");
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
  }).finally(() => open());
});

test("a fenced copy does not publish the will of a client another node writes now", {
  skip,
  timeout: 60_000,
}, () =>
  withTwoNodes(redis, PREFIX, async (a, b) => {
    const { client: w } = await PacketClient.connect(b.broker, { clientId: "watcher" });
    w.send({ type: 8, packetId: 1, subscriptions: [{ topicFilter: "will/#", qos: 1 }] });
    await w.expect(9);
    const { client: s } = await PacketClient.connect(a.broker, {
      clientId: "fs",
      protocolVersion: 5,
      clean: false,
      properties: { sessionExpiryInterval: 60 },
      will: {
        topic: "will/fs",
        payload: text("gone"),
        qos: 1,
        retain: false,
        properties: { willDelayInterval: 1 },
      },
    });
    s.send({ type: 8, packetId: 1, subscriptions: [{ topicFilter: "f/#", qos: 1 }] });
    await s.expect(9);
    await until(() => b.node.nodes().length === 2, "both nodes up");
    // Another node (003) writes fs now: A's next write of it is refused, and A closes it.
    await redis.admin().client.sendCommand(["HSET", a.bus.writers, "fs", "1 003"]);
    const { client: p } = await PacketClient.connect(a.broker, { clientId: "p" });
    p.send(publishPacket("f/x", "m", 1, 1));
    await s.expectClosed(10_000);
    // Its will (1 s delay) is the writer's to publish or cancel, not this copy's.
    const will = await w.next(3_000).catch(() => undefined);
    assert.equal(will, undefined, "a will published by the fenced copy");
  }));

test("a client back on the node of its fenced copy gets what the store has, and is stored again", {
  skip,
  timeout: 60_000,
}, () =>
  withTwoNodes(redis, PREFIX, async (a) => {
    await offlineSession(a, "fs", "f/#");
    // Another node (003) writes fs now: A's next write of it is refused; then that node lets
    // the client id go (its owner forgotten), and the client comes back to A.
    await redis.admin().client.sendCommand(["HSET", a.bus.writers, "fs", "1 003"]);
    const { client: p } = await PacketClient.connect(a.broker, { clientId: "p" });
    p.send(publishPacket("f/x", "m", 1, 1));
    await p.expectClosed(10_000);
    await redis.admin().client.sendCommand([
      "HDEL",
      a.bus.writers.replace(/writer$/, "owner"),
      "fs",
    ]);
    const { client: s2 } = await PacketClient.connect(a.broker, { clientId: "fs", clean: false });
    s2.send({ type: 8, packetId: 2, subscriptions: [{ topicFilter: "g/#", qos: 1 }] });
    while ((await s2.next(5_000)).type !== 9); // (a copy may deliver first what it held)
    // Not the copy, whose changes nothing writes: its new subscription is in the store.
    const stored = await a.store.sessions.loadSessions!(["fs"]);
    const filters = stored.sessions[0]?.subscriptions.map((x) => x.filter).sort();
    assert.deepEqual(filters, ["f/#", "g/#"]);
  }));

test("fenced copies waiting for their new holder ask Redis together, not one by one", {
  skip,
  timeout: 60_000,
}, () =>
  withTwoNodes(redis, PREFIX, async (a) => {
    // A node declared dead can find thousands of its sessions fenced at once: each copy asking
    // for its owner every 50 ms was that many Redis requests 20 times a second.
    const ids = Array.from({ length: 20 }, (_, i) => `fc${i}`);
    for (const id of ids) await offlineSession(a, id, "f/#");
    await a.broker.journal!.settled();
    const owners = a.bus.owners.bind(a.bus);
    let calls = 0;
    a.bus.owners = (clientIds) => (calls++, owners(clientIds));
    a.node.fenced(ids); // no owner elsewhere: each copy waits for one until node-timeout
    await new Promise((r) => setTimeout(r, 1_000));
    const inOneSecond = calls;
    assert.ok(inOneSecond > 0, "the copies ask for their owner");
    assert.ok(inOneSecond <= 40, `${inOneSecond} owner requests in 1 s for 20 copies`);
    await until(() => ids.every((id) => !a.broker.sessions.has(id)), "the copies dropped", 15_000);
  }));
