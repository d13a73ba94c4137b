// The bridge's outbound queue, in memory, in SQLite and in Redis, against the BridgeQueue contract.
import { after, before, test } from "node:test";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { SqliteDb } from "../src/store/sqlite_db.ts";
import { SqliteBridgeQueue } from "../src/bridge/mqtt_queue_sqlite.ts";
import assert from "node:assert/strict";
import { MemoryBridgeQueue } from "../src/bridge/mqtt_queue.ts";
import { bridgeQueueContract } from "./helpers/bridge_queue_contract.ts";
import { RedisBridgeQueue } from "../src/bridge/mqtt_queue_redis.ts";
import { type RedisClient, redisClient } from "../src/store/redis_client.ts";
import { RedisServer, skipWithoutRedis } from "./helpers/redis_server.ts";

bridgeQueueContract("memory", { make: (max) => new MemoryBridgeQueue(max) });

test("memory: a long run of pushes and out-of-order removals stays consistent", () => {
  const q = new MemoryBridgeQueue(5000);
  const live: number[] = [];
  for (let round = 0; round < 20; round++) {
    for (let i = 0; i < 300; i++) {
      q.push({ topic: "t", payload: new Uint8Array(1), qos: 1, retain: false });
    }
    const seqs = q.peek(0, 10_000).map((m) => m.seq);
    // Remove every other one, newest first, then the rest from the front.
    for (let i = seqs.length - 1; i >= 0; i -= 2) q.remove(seqs[i]);
    const left = q.peek(0, 10_000).map((m) => m.seq);
    for (const s of left.slice(0, 100)) q.remove(s);
    live.length = 0;
    live.push(...q.peek(0, 10_000).map((m) => m.seq));
    assert.equal(q.size(), live.length);
    for (let i = 1; i < live.length; i++) assert.ok(live[i] > live[i - 1]);
  }
});

// The same contract on the SQLite store's file, and across a close and reopen.
const files: { db: SqliteDb; dir: string }[] = [];
bridgeQueueContract("sqlite", {
  make(max) {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "mqttx-bq-"));
    const db = new SqliteDb({ path: path.join(dir, "q.db") });
    files.push({ db, dir });
    return new SqliteBridgeQueue(db, "b", max);
  },
  reopen(q, max) {
    const f = files.find((f) => (q as unknown as { file: SqliteDb }).file === f.db)!;
    f.db.close();
    f.db = new SqliteDb({ path: f.db.options.path });
    return Promise.resolve(new SqliteBridgeQueue(f.db, "b", max));
  },
});
after(() => {
  for (const f of files) {
    f.db.close();
    fs.rmSync(f.dir, { recursive: true, force: true });
  }
});

// The same contract in Redis (a real redis-server), across a new client too.
const skipRedis = skipWithoutRedis();
let redis: RedisServer | undefined;
const redisClients: RedisClient[] = [];
before(async () => {
  if (!skipRedis) redis = await RedisServer.start();
});
async function connected(): Promise<RedisClient> {
  const c = redisClient(redis!.url, 1_000);
  c.on("error", () => {});
  await c.connect();
  redisClients.push(c);
  return c;
}
let bridges = 0;
const names = new WeakMap<object, { name: string; client: RedisClient }>();
bridgeQueueContract("redis", {
  skip: skipRedis,
  async make(max) {
    const name = `b${++bridges}`;
    const client = await connected();
    const q = await RedisBridgeQueue.open(client, name, max);
    names.set(q, { name, client });
    return q;
  },
  async reopen(q, max) {
    const { name, client } = names.get(q)!;
    client.destroy();
    const again = await connected();
    const q2 = await RedisBridgeQueue.open(again, name, max);
    names.set(q2, { name, client: again });
    return q2;
  },
});
test("redis: while Redis is down a push fails and is not counted", {
  skip: skipRedis,
  timeout: 30_000,
}, async () => {
  const q = await RedisBridgeQueue.open(await connected(), "down", 10);
  const m = { topic: "t", payload: new Uint8Array([1]), qos: 1 as const, retain: false };
  await q.push(m);
  await redis!.stop();
  await assert.rejects(Promise.resolve(q.push({ ...m, topic: "lost" })));
  assert.equal(q.size(), 1, "the failed push is not queued");
  await redis!.restart(); // no persistence in this server: the queue in Redis starts empty
  for (let i = 0; i < 200; i++) {
    try {
      await q.push({ ...m, topic: "kept" });
      break;
    } catch {
      await new Promise((r) => setTimeout(r, 50)); // the client reconnects with backoff
    }
  }
  assert.deepEqual((await q.peek(0, 10)).map((x) => x.topic), ["kept"]);
});

after(async () => {
  for (const c of redisClients) if (c.isOpen) c.destroy();
  await redis?.dispose();
});
