/**
 * QoS 2 towards the upstream stays exactly once across a kill -9 of mqttx in
 * the middle of the flow: mqttx on the SQLite (and on the Redis) store queues N QoS 2 messages
 * while its upstream (a real Mosquitto) is down; the upstream comes back and
 * the bridge drains; mqttx is killed while messages are between PUBLISH,
 * PUBREC, PUBREL and PUBCOMP; after the restart the upstream's persistent
 * subscriber has every message exactly once, in order. (The bridge keeps
 * MQTT.js's outgoing packet-id state in the queue's store:
 * src/bridge/mqtt_outgoing.ts.)
 *
 * And from the upstream: Mosquitto sends N QoS 2 messages to a bridged `in`
 * topic; mqttx is killed while some are kept in its store as acknowledged with
 * PUBREC but not yet released; after the restart the upstream sends PUBREL again
 * (clean-start: false) and a local persistent subscriber, offline all along,
 * gets every message exactly once (mqtt_incoming.ts).
 */
import { after, afterEach, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import * as path from "node:path";
import { DatabaseSync } from "node:sqlite";
import { mustRun } from "./helpers/harness.ts";
import {
  Clients,
  type Connected,
  publish,
  sleep,
  subscribe,
  uid,
  withTimeout,
} from "./helpers/mqttjs.ts";
import { BrokerProcess } from "./helpers/broker_process.ts";
import { mosquittoAvailable, startUpstream, type Upstream } from "./helpers/upstream_mosquitto.ts";
import { RedisServer, skipWithoutRedis } from "./helpers/redis_server.ts";
import { RedisCut } from "./helpers/redis_cut.ts";
import { redisClient } from "../src/store/redis_client.ts";
import { bridgeIncomingKey, bridgeInflightKey } from "../src/bridge/mqtt_queue_redis.ts";

const T = {
  timeout: 180_000,
  skip: !mosquittoAvailable() && !mustRun() ? "mosquitto not on PATH" : false,
};
const N = 3000;
/** Messages from the upstream in the inbound test, and its own deadline under node:test's. */
const N_IN = 2000;
const DEADLINE_MS = 160_000;

let mqttx: BrokerProcess | undefined;
let upstream: Upstream | undefined;
let redis: RedisServer | undefined;
const skipRedis = skipWithoutRedis();

before(async () => {
  if (!skipRedis && !T.skip) redis = await RedisServer.start();
});
after(async () => {
  await redis?.dispose();
});

/** The store's config lines and how many in-flight records (and released ones) it holds. */
interface StoreUnderTest {
  yaml(): string;
  inflight(b: BrokerProcess): Promise<{ inflight: number; released: number }>;
  /** Incoming QoS 2 records kept in the store (PUBREC sent, not yet published locally). */
  kept(b: BrokerProcess): Promise<number>;
}

const sqlite: StoreUnderTest = {
  yaml: () => "store:\n  type: sqlite\n",
  inflight(b) {
    const db = new DatabaseSync(path.join(b.dir, "mqttx.db"));
    const count = (where: string) =>
      Number(db.prepare(`SELECT count(*) AS n FROM bridge_inflight ${where}`).get()!.n);
    const r = { inflight: count(""), released: count("WHERE released = 1") };
    db.close();
    return Promise.resolve(r);
  },
  kept(b) {
    const db = new DatabaseSync(path.join(b.dir, "mqttx.db"));
    try {
      return Promise.resolve(
        Number(db.prepare("SELECT count(*) AS n FROM bridge_incoming").get()!.n),
      );
    } catch {
      return Promise.resolve(0); // not created yet
    } finally {
      db.close();
    }
  },
};

const onRedis: StoreUnderTest = {
  yaml: () => `store:\n  type: redis\nredis:\n  url: ${redis!.url}\n`,
  async inflight() {
    const c = redisClient(redis!.url, 1_000);
    await c.connect();
    const values: unknown[] = await c.sendCommand(["HVALS", bridgeInflightKey("cloud")]);
    c.destroy();
    const released = values.filter((v) => String(v).endsWith(":1")).length;
    return { inflight: values.length, released };
  },
  async kept() {
    const c = redisClient(redis!.url, 1_000);
    await c.connect();
    const n = Number(await c.sendCommand(["HLEN", bridgeIncomingKey("cloud")]));
    c.destroy();
    return n;
  },
};

afterEach(async () => {
  await mqttx?.dispose();
  mqttx = undefined;
  await upstream?.remove();
  upstream = undefined;
});

describe("bridge QoS 2 across kill -9", () => {
  test(
    "SQLite: killed mid-drain, the upstream subscriber gets each message exactly once",
    T,
    () => killMidDrain(sqlite),
  );
  test("Redis: killed mid-drain, the upstream subscriber gets each message exactly once", {
    ...T,
    skip: T.skip || skipRedis,
  }, () => killMidDrain(onRedis));
});

describe("bridge: inbound QoS 2 across kill -9", () => {
  test(
    "SQLite: killed between PUBREC and PUBREL, each message arrives locally once",
    T,
    () => withTimeout(killMidStream(sqlite), "SQLite inbound kill", DEADLINE_MS),
  );
  test(
    "Redis: killed between PUBREC and PUBREL, each message arrives locally once",
    { ...T, skip: T.skip || skipRedis },
    () => withTimeout(killMidStream(onRedis), "Redis inbound kill", DEADLINE_MS),
  );
  // The worst instants of the kill above, every time. Right after the kept record was deleted:
  test(
    "Redis: dead right after the kept record went, the message is stored for the subscriber",
    { ...T, skip: T.skip || skipRedis },
    () =>
      withTimeout(
        deadAt("the kept record deleted", (name) => (args) => deletes(args, name)),
        "Redis inbound cut",
        60_000,
      ),
  );
  // Right after the message was stored for the subscriber: the kept record must be gone with it,
  // or the upstream's PUBREL after the restart publishes it a second time.
  test(
    "Redis: dead right after the local publish was stored, the message is not published again",
    { ...T, skip: T.skip || skipRedis },
    () =>
      withTimeout(
        deadAt("the local publish stored", (_name, payload) => (args) =>
          /^EVAL(SHA)?$/.test(args[0]) && args.some((a) =>
            a.includes(payload)
          )),
        "Redis inbound cut after the journal",
        60_000,
      ),
  );
  // The same for a retained message, stored (its own write) before it is routed: the session
  // batch that stores it for the subscriber (not the retained write) must take the record along.
  test(
    "Redis: a retained message, dead right after it was stored for the subscriber, is not published again",
    { ...T, skip: T.skip || skipRedis },
    () =>
      withTimeout(
        deadAt("the retained local publish stored", (_name, payload, sinkId) => (args) =>
          /^EVAL(SHA)?$/.test(args[0]) && args.some((a) =>
            a.includes(payload)
          ) &&
          args.some((a) => a.includes(sinkId)), true),
        "Redis inbound cut after the journal, retained",
        60_000,
      ),
  );
  test(
    "Redis: a retained message no persistent session wants, dead right after its retained write, is not published again",
    { ...T, skip: T.skip || skipRedis },
    () => withTimeout(retainedAlone(), "Redis inbound cut after the retained write", 60_000),
  );
});

/** What `withCutBridge` gives its body; `start` (re)starts mqttx and points `local` at it. */
interface CutBridge {
  cut: RedisCut;
  remote: Clients;
  local: Clients;
  b: BrokerProcess;
  start(): Promise<void>;
}

/**
 * An upstream Mosquitto, a RedisCut in front of the test's redis-server, and mqttx (a real
 * process, not started) on the Redis store through it with an `in` QoS 2 bridge `name` from
 * `down/`; the clients and the cut are closed after `body`.
 */
async function withCutBridge(name: string, body: (t: CutBridge) => Promise<void>): Promise<void> {
  upstream = await startUpstream();
  const cut = await RedisCut.start(redis!.port);
  const remote = new Clients(() => upstream!.url);
  let url = "";
  const local = new Clients(() => url);
  const b = mqttx = new BrokerProcess(
    `host: 127.0.0.1\nsocket:\n  port: 0\nstore:\n  type: redis\nredis:\n  url: ${cut.url}\n` +
      bridgeYaml(name, upstream.url, `direction: in, qos: 2, remote-prefix: "down/"`),
  );
  const start = async () => void (url = `mqtt://127.0.0.1:${await b.start()}`);
  try {
    await body({ cut, remote, local, b, start });
  } finally {
    await local.closeAll();
    await remote.closeAll();
    await cut.close();
  }
}

/**
 * A retained message no persistent session subscribes to: its retained write is all it stores,
 * so its kept record must go with that write. Redis is cut right after it, mqttx killed, and
 * restarted while the upstream is down: a subscriber gets the message as retained, a newer
 * retained value is published; then the upstream comes back and sends PUBREL again. Published
 * again, the message would reach the subscriber twice and overwrite the newer retained value.
 * (Its own topic: the persistent sinks of the tests before, in the same Redis, want `data`.)
 */
function retainedAlone(): Promise<void> {
  return withCutBridge(`ret${uid()}`, async ({ cut, remote, local, b, start }) => {
    await start();
    const pub = await remote.connect();
    const probe = await local.connect();
    await subscribe(probe.client, "probe", { qos: 0 });
    await untilBridged(pub, probe);
    await local.closeAll();
    const payload = `alone-${uid()}`;
    const gone = cut.cutWhen((args) =>
      /^EVAL(SHA)?$/.test(args[0]) && args.some((a) => a.includes(payload))
    );
    await publish(pub.client, "down/solo", payload, { qos: 2, retain: true });
    await withTimeout(gone, "the retained write", 20_000);
    await sleep(300); // what mqttx writes now never reaches Redis
    await b.kill("SIGKILL");
    await clearUpstream(pub, "down/solo");
    await remote.closeAll();
    await upstream!.stop();
    cut.heal();
    await start();
    const sub = await local.connect();
    await subscribe(sub.client, ["solo", "probe"], { qos: 2 });
    const data = () => sub.inbox.messages.filter((m) => m.topic === "solo");
    await sub.inbox.until(() => data().length > 0, "the retained message", 10_000);
    await publish((await local.connect()).client, "solo", "newer", { qos: 1, retain: true });
    await sub.inbox.until(() => data().length > 1, "the newer one", 10_000);
    await upstream!.start();
    await untilBridged(await remote.connect(), sub); // the PUBREL came before
    await sleep(500); // a message published again would arrive now
    assert.deepEqual(data().map((m) => m.payload), [payload, "newer"]);
    const late = await local.connect();
    await subscribe(late.client, "solo", { qos: 1 });
    await late.inbox.until((ms) => ms.length > 0, "the retained message", 10_000);
    assert.deepEqual(late.inbox.messages.map((m) => m.payload), ["newer"]);
  });
}

/**
 * The upstream would send its retained copy of `topic` again at the bridge's SUBSCRIBE (a
 * new message then, not the PUBREL's): cleared there (QoS 0: not queued for the offline bridge),
 * and known cleared once a later QoS 1 publish (outside the bridge's topics) is acknowledged.
 */
async function clearUpstream(pub: Connected, topic = "down/data"): Promise<void> {
  await publish(pub.client, topic, "", { qos: 0, retain: true });
  await publish(pub.client, "elsewhere", "", { qos: 1 });
}

/** `args` (a command to Redis) deletes a kept record of bridge `name`: alone or in a batch. */
function deletes(args: string[], name: string): boolean {
  const key = bridgeIncomingKey(name);
  if (args[0] === "HDEL") return args[1] === key;
  return /^EVAL(SHA)?$/.test(args[0]) && args.some((a, i) => a === "HDEL" && args[i + 1] === key);
}

/** A bridge `name` to `url` with one `#` topic (`topic`: the rest of its fields). */
function bridgeYaml(name: string, url: string, topic: string): string {
  return `bridges:\n  - name: ${name}\n    url: ${url}\n    reconnect-delay: 100ms\n` +
    `    reconnect-max-delay: 300ms\n    topics:\n      - { filter: "#", ${topic} }\n`;
}

/**
 * A persistent subscriber on `data` and `probe` (QoS 2), left offline once the bridge carries
 * the upstream's `down/probe` to it; `pub` is the upstream publisher.
 */
async function offlineSinkBridged(
  local: Clients,
  remote: Clients,
): Promise<{ sinkId: string; pub: Connected }> {
  const sinkId = `sink-${uid()}`;
  const sink = await local.connect({ clientId: sinkId, clean: false });
  await subscribe(sink.client, ["data", "probe"], { qos: 2 });
  const pub = await remote.connect();
  await untilBridged(pub, sink);
  await local.closeAll();
  return { sinkId, pub };
}

/** The bridge is subscribed upstream once a probe comes through to `sink` (on `probe`). */
async function untilBridged(pub: Connected, sink: Connected): Promise<void> {
  for (let i = 0; !sink.inbox.messages.some((m) => m.topic === "probe"); i++) {
    assert.ok(i < 200, "the bridge never subscribed upstream");
    await publish(pub.client, "down/probe", "p", { qos: 0 });
    await sleep(100);
  }
}

/**
 * The upstream's PUBREL makes mqttx publish the kept message locally and delete its record
 * (and send PUBCOMP): the message must be stored for the offline persistent subscriber no
 * later than the record goes, or a crash in between loses it (acknowledged means kept), and
 * the record must go with it, or a crash in between publishes it twice. Redis sees nothing
 * mqttx sends after the command `cutAt(bridge name, payload, subscriber id)` matches (a proxy
 * cuts it there, as a kill -9 at that instant would); after the restart the subscriber gets the
 * message once. `retain`: the upstream publishes it retained.
 */
function deadAt(
  what: string,
  cutAt: (name: string, payload: string, sinkId: string) => (args: string[]) => boolean,
  retain = false,
): Promise<void> {
  const name = `cut${uid()}`;
  return withCutBridge(name, async ({ cut, remote, local, b, start }) => {
    await start();
    const { sinkId, pub } = await offlineSinkBridged(local, remote);

    const payload = `kept-${uid()}`;
    const gone = cut.cutWhen(cutAt(name, payload, sinkId));
    await publish(pub.client, "down/data", payload, { qos: 2, retain });
    await withTimeout(gone, what, 20_000);
    await sleep(300); // what mqttx writes now never reaches Redis
    await b.kill("SIGKILL");
    if (retain) await clearUpstream(pub);
    cut.heal();
    await start();
    const again = await local.connect({ clientId: sinkId, clean: false });
    const data = () => again.inbox.messages.filter((m) => m.topic === "data");
    await again.inbox.until(() => data().length > 0, "the message after the restart", 10_000)
      .catch(() => {});
    await sleep(500); // a duplicate would arrive now
    assert.deepEqual(data().map((m) => m.payload), [payload], "delivered once after the restart");
  });
}

async function killMidDrain(store: StoreUnderTest): Promise<void> {
  upstream = await startUpstream();
  const remote = new Clients(() => upstream!.url);
  let url = "";
  const local = new Clients(() => url);
  try {
    const sinkId = `sink-${uid()}`;
    const sink = await remote.connect({ clientId: sinkId, clean: false });
    await subscribe(sink.client, "up/#", { qos: 2 });
    await remote.closeAll();
    await upstream.stop();

    const b = mqttx = new BrokerProcess(
      `host: 127.0.0.1\nsocket:\n  port: 0\n${store.yaml()}` +
        bridgeYaml("cloud", upstream.url, `qos: 2, remote-prefix: "up/"`),
    );
    url = `mqtt://127.0.0.1:${await b.start()}`;
    const pub = await local.connect();
    await Promise.all(Array.from({ length: 20 }, async (_, w) => {
      for (let i = w; i < N; i += 20) {
        await publish(pub.client, "data", String(i).padStart(5, "0"), { qos: 2 });
      }
    }));
    await local.closeAll();

    // The upstream back: kill mqttx once a part of the backlog went up (the rest is in flight).
    await upstream.start();
    const again = await remote.connect({ clientId: sinkId, clean: false });
    await again.inbox.until((ms) => ms.length >= N / 5, `${N / 5} upstream`, 60_000);
    // Killed when the store says messages are in flight; under load that window can close
    // between the look and the kill, so a kill that found none is tried again while messages
    // are still to come (each kill is a crash the exactly-once check below covers).
    let atKill = 0, inflight = 0, released = 0;
    const allArrived = () => new Set(again.inbox.messages.map((m) => m.payload)).size >= N;
    for (let attempt = 0; inflight === 0 && attempt < 5 && !allArrived(); attempt++) {
      while ((await store.inflight(b)).inflight === 0 && !allArrived()) await sleep(2);
      if (allArrived()) break;
      await b.kill("SIGKILL");
      atKill = again.inbox.messages.length;
      ({ inflight, released } = await store.inflight(b));
      url = `mqtt://127.0.0.1:${await b.start()}`;
    }
    assert.ok(atKill > 0, "killed at least once mid-drain");
    const got = await again.inbox.until(
      (ms) => new Set(ms.map((m) => m.payload)).size >= N,
      `${N} distinct messages upstream`,
      90_000,
    );
    await sleep(1_000); // a late duplicate would arrive now
    const payloads = again.inbox.messages.map((m) => m.payload);
    const counts = new Map<string, number>();
    for (const p of payloads) counts.set(p, (counts.get(p) ?? 0) + 1);
    const twice = [...counts].filter(([, n]) => n > 1).map(([p]) => p);
    assert.ok(atKill < N, `killed mid-drain (${atKill} of ${N} had arrived)`);
    console.log(
      `killed with ${inflight} in flight (${released} after PUBREC), ${atKill} arrived`,
    );
    assert.deepEqual(twice, [], `delivered more than once (of ${got.length} received)`);
    assert.equal(payloads.length, N);
    assert.deepEqual(payloads, [...payloads].sort(), "in the order they were accepted");
  } finally {
    await local.closeAll();
    await remote.closeAll();
  }
}

async function killMidStream(store: StoreUnderTest): Promise<void> {
  upstream = await startUpstream();
  const remote = new Clients(() => upstream!.url);
  let url = "";
  const local = new Clients(() => url);
  try {
    const b = mqttx = new BrokerProcess(
      `host: 127.0.0.1\nsocket:\n  port: 0\nmax-queued-messages: ${2 * N_IN}\n${store.yaml()}` +
        bridgeYaml("cloud", upstream.url, `direction: in, qos: 2, remote-prefix: "down/"`),
    );
    url = `mqtt://127.0.0.1:${await b.start()}`;
    // The local persistent subscriber, offline while it all happens: the messages are stored.
    const { sinkId, pub } = await offlineSinkBridged(local, remote);

    const sent = Promise.all(Array.from({ length: 20 }, async (_, w) => {
      for (let i = w; i < N_IN; i += 20) {
        await publish(pub.client, "down/data", String(i).padStart(5, "0"), { qos: 2 });
      }
    }));
    // Kill as soon as the store holds messages acknowledged upstream (PUBREC) but not released;
    // if none are left at the kill (they were released meanwhile), start again and retry.
    let kept = 0;
    for (let tries = 0; kept === 0; tries++) {
      assert.ok(tries < 20, "never killed with a kept incoming message");
      for (let i = 0; (await store.kept(b)) === 0; i++) {
        assert.ok(i < 20_000, "the store never held an incoming message");
        await sleep(2);
      }
      await b.kill("SIGKILL");
      kept = await store.kept(b);
      if (kept === 0) url = `mqtt://127.0.0.1:${await b.start()}`;
    }
    await sent;
    console.log(`killed with ${kept} incoming QoS 2 messages kept between PUBREC and PUBREL`);
    url = `mqtt://127.0.0.1:${await b.start()}`;
    const again = await local.connect({ clientId: sinkId, clean: false });
    const data = () => again.inbox.messages.filter((m) => m.topic === "data");
    // Until all N_IN came, or nothing new came for 30 s (then the assertions say what is missing).
    let seen = -1;
    for (let quiet = 0; quiet < 300 && seen < N_IN;) {
      await sleep(100);
      const now = new Set(data().map((m) => m.payload)).size;
      quiet = now === seen ? quiet + 1 : 0;
      seen = now;
    }
    await sleep(1_000); // a late duplicate would arrive now
    const all = Array.from({ length: N_IN }, (_, i) => String(i).padStart(5, "0"));
    const got = new Set(data().map((m) => m.payload));
    assert.deepEqual(all.filter((p) => !got.has(p)), [], "lost");
    const counts = new Map<string, number>();
    for (const m of data()) counts.set(m.payload, (counts.get(m.payload) ?? 0) + 1);
    const twice = [...counts].filter(([, n]) => n > 1).map(([p]) => p);
    assert.deepEqual(twice, [], "delivered more than once");
    assert.equal(data().length, N_IN);
  } finally {
    await local.closeAll();
    await remote.closeAll();
  }
}
