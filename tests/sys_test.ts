// $SYS topics: answers after SUBSCRIBE, the periodic status, presence events, the publish guard.
import { afterEach, describe, test } from "node:test";
import assert from "node:assert/strict";
import { closeAll, newBroker, PacketClient, str, text } from "./helpers/packet_client.ts";
import type { Broker } from "../src/broker/broker.ts";
import type { BrokerHooks } from "../src/broker/hooks.ts";
import type { Plugin } from "../src/plugins.ts";
import type { ConnectPacket, PublishPacket, QoS } from "../src/mqtt/packet.ts";
import { formatTimestamp, ipOf, sysTopics } from "../src/sys/sys_topics.ts";
import { startBroker, type TestBroker } from "./helpers/harness.ts";
import { Clients, subscribe, uid } from "./helpers/mqttjs.ts";

const TIMEOUT = { timeout: 20_000 };
const TIMESTAMP = /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$/;

const plugins: Plugin[] = [];
afterEach(async () => {
  for (const p of plugins.splice(0)) await p.stop?.();
  await closeAll();
});

function sysBroker(over: { enable?: boolean; interval?: number } = {}): Broker {
  const hooks: BrokerHooks[] = [];
  const b = newBroker({ hooks });
  const p = sysTopics({
    broker: b,
    enable: over.enable ?? true,
    brokerId: 7,
    version: "9.9.9",
    interval: over.interval ?? 60_000,
  });
  plugins.push(p);
  hooks.push(p.hooks);
  return b;
}

function connect(b: Broker, opts: Partial<ConnectPacket>) {
  return PacketClient.connect(b, opts).then((r) => r.client);
}

async function sub(c: PacketClient, filter: string, packetId = 1, qos: QoS = 0) {
  c.send({ type: 8, packetId, subscriptions: [{ topicFilter: filter, qos }] });
  const ack = await c.expect(9);
  assert.ok(ack.reasonCodes[0] < 0x80, `SUBACK for ${filter}: ${ack.reasonCodes[0]}`);
}

async function json(c: PacketClient, topic: string): Promise<Record<string, unknown>> {
  const p = await c.expect(3);
  assert.equal(p.topic, topic);
  assert.equal(p.retain, false);
  assert.equal(p.qos, 0);
  return JSON.parse(str(p.payload));
}

describe("$SYS", () => {
  test("the original four: answered right after each subscribe, JSON as in the original", async () => {
    const b = sysBroker();
    const c = await connect(b, { clientId: "c" });
    await sub(c, "$SYS/broker/version");
    assert.deepEqual(await json(c, "$SYS/broker/version"), { version: "9.9.9" });
    await sub(c, "$SYS/broker/activeConnectCount", 2);
    assert.deepEqual(await json(c, "$SYS/broker/activeConnectCount"), { activeConnectCount: 1 });
    await sub(c, "$SYS/broker/time", 3);
    const t = await json(c, "$SYS/broker/time");
    assert.deepEqual(Object.keys(t), ["timestamp"]);
    assert.match(String(t.timestamp), TIMESTAMP);
    // Again on every subscribe, with current values.
    await connect(b, { clientId: "d" });
    await sub(c, "$SYS/broker/activeConnectCount", 4);
    assert.deepEqual(await json(c, "$SYS/broker/activeConnectCount"), { activeConnectCount: 2 });
    await sub(c, "$SYS/broker/status", 5);
    const s = await json(c, "$SYS/broker/status");
    assert.deepEqual(Object.keys(s).sort(), [
      "activeConnectCount",
      "droppedMsg",
      "maxActiveConnectCount",
      "receivedMsg",
      "sendMsg",
      "timestamp",
      "uptime",
      "version",
    ]);
    assert.equal(s.activeConnectCount, 2);
    assert.equal(s.version, "9.9.9");
    await c.expectNothing(30);
  });

  test("counters: received/sent messages, max active connections, uptime", async () => {
    const b = sysBroker();
    const c = await connect(b, { clientId: "c" });
    const x = await connect(b, { clientId: "x" });
    x.send({ type: 14 });
    await x.expectClosed();
    await sub(c, "a");
    c.send({
      type: 3,
      topic: "a",
      payload: text("1"),
      qos: 1,
      retain: false,
      dup: false,
      packetId: 9,
    });
    await c.next(); // the PUBACK and the message, in either order
    await c.next();
    await sub(c, "$SYS/broker/+", 2);
    const got = new Map<string, Record<string, unknown>>();
    for (let i = 0; i < 10; i++) {
      const p = await c.expect(3);
      got.set(p.topic, JSON.parse(str(p.payload)));
    }
    assert.deepEqual([...got.keys()].sort(), [
      "$SYS/broker/activeConnectCount",
      "$SYS/broker/droppedMsg",
      "$SYS/broker/maxActiveConnectCount",
      "$SYS/broker/nodes",
      "$SYS/broker/receivedMsg",
      "$SYS/broker/sendMsg",
      "$SYS/broker/status",
      "$SYS/broker/time",
      "$SYS/broker/uptime",
      "$SYS/broker/version",
    ]);
    assert.deepEqual(got.get("$SYS/broker/maxActiveConnectCount"), { maxActiveConnectCount: 2 });
    assert.deepEqual(got.get("$SYS/broker/activeConnectCount"), { activeConnectCount: 1 });
    assert.deepEqual(got.get("$SYS/broker/receivedMsg"), { receivedMsg: b.stats.received });
    assert.ok(b.stats.received >= 1);
    assert.deepEqual(got.get("$SYS/broker/sendMsg"), { sendMsg: b.stats.sent });
    assert.ok(b.stats.sent >= 1);
    assert.equal(typeof got.get("$SYS/broker/uptime")!.uptime, "number");
    assert.deepEqual(got.get("$SYS/broker/droppedMsg"), { droppedMsg: b.stats.dropped });
    // Not clustered: the node is this broker alone.
    assert.deepEqual(got.get("$SYS/broker/nodes"), { nodes: [{ id: "7" }] });
  });

  test("status is pushed every interval while subscribed, and stops after UNSUBSCRIBE", async () => {
    const b = sysBroker({ interval: 20 });
    const c = await connect(b, { clientId: "c", protocolVersion: 5 });
    await sub(c, "$SYS/broker/7/status"); // the later original's topic works too
    for (let i = 0; i < 3; i++) {
      const s = await json(c, "$SYS/broker/7/status");
      assert.match(String(s.timestamp), TIMESTAMP);
    }
    c.send({ type: 10, packetId: 2, topicFilters: ["$SYS/broker/7/status"] });
    // Pushes already sent may still arrive before the UNSUBACK.
    for (;;) if ((await c.next()).type === 11) break;
    await c.expectNothing(150);
  });

  test("status ends with the connection; $SYS subscriptions are not kept in a session", async () => {
    const b = sysBroker({ interval: 20 });
    const c = await connect(b, { clientId: "p", clean: false });
    await sub(c, "keep/me", 2);
    await sub(c, "$SYS/broker/status");
    await json(c, "$SYS/broker/status");
    c.drop();
    await c.expectClosed();
    assert.deepEqual([...b.sessions.get("p")!.subscriptions.keys()], ["keep/me"]);
    const { client: again, connack } = await PacketClient.connect(b, {
      clientId: "p",
      clean: false,
    });
    assert.equal(connack.sessionPresent, true);
    await again.expectNothing(150);
  });

  test("presence events: connected/disconnected JSON, to wildcard subscribers, never retained", async () => {
    const b = sysBroker();
    const watch = await connect(b, { clientId: "watch" });
    await sub(watch, "$SYS/broker/7/clients/+/+");
    const all = await connect(b, { clientId: "all" });
    await sub(all, "#");
    await json(watch, "$SYS/broker/7/clients/all/connected");
    const c = await connect(b, {
      clientId: "dev-1",
      username: "u1",
      password: text("pw"),
      protocolVersion: 5,
    });
    const on = await json(watch, "$SYS/broker/7/clients/dev-1/connected");
    assert.deepEqual({ ...on, timestamp: "" }, {
      clientId: "dev-1",
      username: "u1",
      ip: "127.0.0.1",
      protocolVersion: 5,
      timestamp: "",
    });
    assert.match(String(on.timestamp), TIMESTAMP);
    c.send({ type: 14 });
    await c.expectClosed();
    const off = await json(watch, "$SYS/broker/7/clients/dev-1/disconnected");
    assert.equal(off.clientId, "dev-1");
    const anon = await connect(b, { clientId: "anon" });
    assert.equal((await json(watch, "$SYS/broker/7/clients/anon/connected")).username, null);
    anon.drop();
    await json(watch, "$SYS/broker/7/clients/anon/disconnected");
    await all.expectNothing(30); // '#' never matches $SYS
    assert.equal(await b.store.retainedCount(), 0);
  });

  test("clients may not publish to $SYS (5.0: 0x87), even with sys-topic disabled", async () => {
    for (const enable of [true, false]) {
      const b = sysBroker({ enable });
      const w = await connect(b, { clientId: "w" });
      await sub(w, "$SYS/broker/version");
      if (enable) await json(w, "$SYS/broker/version");
      const p = await connect(b, { clientId: "p", protocolVersion: 5 });
      const fake: PublishPacket = {
        type: 3,
        topic: "$SYS/broker/version",
        payload: text("fake"),
        qos: 1,
        retain: true,
        dup: false,
        packetId: 1,
      };
      p.send(fake);
      assert.equal((await p.expect(4)).reasonCode, 0x87);
      p.send({ ...fake, topic: "$SYS", qos: 0 });
      p.send({ ...fake, topic: "$SYSTEM/x", packetId: 2, retain: false }); // not $SYS
      assert.notEqual((await p.expect(4)).reasonCode, 0x87);
      assert.equal(p.closed, false);
      await w.expectNothing(30);
      assert.equal(await b.store.retainedCount(), 0);
    }
  });

  test("a will on $SYS is not stored", async () => {
    const b = sysBroker();
    const w = await connect(b, { clientId: "w" });
    await sub(w, "$SYS/will/#");
    const c = await connect(b, {
      clientId: "c",
      will: { topic: "$SYS/will/x", payload: text("w"), qos: 0, retain: false },
    });
    c.drop();
    await c.expectClosed();
    await w.expectNothing(50);
  });

  test("stop() ends the periodic pushes", async () => {
    const b = sysBroker({ interval: 20 });
    const c = await connect(b, { clientId: "c" });
    await sub(c, "$SYS/broker/status");
    await json(c, "$SYS/broker/status");
    await json(c, "$SYS/broker/status");
    for (const p of plugins) await p.stop?.();
    // Whatever was sent before stop() arrives before the PINGRESP.
    c.send({ type: 12 });
    for (;;) if ((await c.next()).type === 13) break;
    await c.expectNothing(100);
  });

  test("helpers: timestamp format and the address of ip:port", () => {
    assert.equal(formatTimestamp(new Date(2024, 0, 2, 3, 4, 5)), "2024-01-02 03:04:05");
    assert.equal(ipOf("10.0.0.5:1883"), "10.0.0.5");
    assert.equal(ipOf("[::1]:1883"), "::1");
  });
});

describe("$SYS through the app (MQTT.js)", () => {
  let broker: TestBroker | undefined;
  const clients = new Clients(() => broker!.url);
  afterEach(async () => {
    await clients.closeAll();
    await broker?.stop();
    broker = undefined;
  });

  test("sys-topic.enable and interval from the config", TIMEOUT, async () => {
    broker = await startBroker({ sysTopic: { enable: true, interval: 50 }, version: "cfg-1" });
    if (broker.external) return;
    const c = await clients.connect({ protocolVersion: 4, clientId: `sys-${uid()}` });
    await subscribe(c.client, "$SYS/broker/version");
    const v = await c.inbox.until(
      (m) => m.some((x) => x.topic === "$SYS/broker/version"),
      "version",
    );
    assert.deepEqual(JSON.parse(v.find((x) => x.topic === "$SYS/broker/version")!.payload), {
      version: "cfg-1",
    });
    await subscribe(c.client, "$SYS/broker/status");
    const s = await c.inbox.until(
      (m) => m.filter((x) => x.topic === "$SYS/broker/status").length >= 3,
      "3 status",
    );
    assert.equal(
      JSON.parse(s.find((x) => x.topic === "$SYS/broker/status")!.payload).version,
      "cfg-1",
    );
  });
});
