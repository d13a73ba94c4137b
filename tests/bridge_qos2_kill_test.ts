/**
 * QoS 2 towards the upstream stays exactly once across a kill -9 of mqttx in
 * the middle of the flow: mqttx on the SQLite (and on the Redis) store queues N QoS 2 messages
 * while its upstream (a real Mosquitto) is down; the upstream comes back and
 * the bridge drains; mqttx is killed while messages are between PUBLISH,
 * PUBREC, PUBREL and PUBCOMP; after the restart the upstream's persistent
 * subscriber has every message exactly once, in order. (The bridge keeps
 * MQTT.js's outgoing packet-id state in the queue's store:
 * src/bridge/mqtt_outgoing.ts.)
 */
import { after, afterEach, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import * as path from "node:path";
import { DatabaseSync } from "node:sqlite";
import { mustRun } from "./helpers/harness.ts";
import { Clients, publish, sleep, subscribe, uid } from "./helpers/mqttjs.ts";
import { BrokerProcess } from "./helpers/broker_process.ts";
import { mosquittoAvailable, startUpstream, type Upstream } from "./helpers/upstream_mosquitto.ts";
import { RedisServer, skipWithoutRedis } from "./helpers/redis_server.ts";
import { redisClient } from "../src/store/redis_client.ts";
import { bridgeInflightKey } from "../src/bridge/mqtt_queue_redis.ts";

const T = {
  timeout: 180_000,
  skip: !mosquittoAvailable() && !mustRun() ? "mosquitto not on PATH" : false,
};
const N = 3000;

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
        `bridges:\n  - name: cloud\n    url: ${upstream.url}\n    reconnect-delay: 100ms\n` +
        `    reconnect-max-delay: 300ms\n    topics:\n` +
        `      - { filter: "#", qos: 2, remote-prefix: "up/" }\n`,
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
    await b.kill("SIGKILL");
    const atKill = again.inbox.messages.length;
    const { inflight, released } = await store.inflight(b);
    assert.ok(inflight > 0, "killed with messages in flight upstream");
    url = `mqtt://127.0.0.1:${await b.start()}`;
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
