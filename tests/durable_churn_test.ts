/**
 * Nothing leaks in Redis: 10,000 persistent sessions are created, filled with
 * queued messages (some shared by all, one of each session's own) and left to
 * expire; afterwards Redis holds exactly the keys it held before, and its
 * memory is back near the baseline. Drives a broker on the Redis store
 * in-process over in-memory connections (no sockets needed for 10,000 clients).
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { Broker } from "../src/broker/broker.ts";
import { restoreSessions } from "../src/broker/restore.ts";
import type { RedisStore } from "../src/store/redis.ts";
import { openRedisStore, RedisServer, skipWithoutRedis } from "./helpers/redis_server.ts";
import { testBrokerOptions } from "./helpers/packet_client.ts";
import { fillExpiringSessions } from "./helpers/churn.ts";

const skip = skipWithoutRedis();
const SESSIONS = 10_000;
/** Seconds: long enough to create and fill every session before the first expires. */
const EXPIRY = 15;
let redis: RedisServer | undefined;
let store: RedisStore | undefined;
let broker: Broker | undefined;

before(async () => {
  if (skip) return;
  redis = await RedisServer.start();
  store = await openRedisStore(redis.url);
});

after(async () => {
  await broker?.close();
  await store?.close();
  await redis?.dispose();
});

async function info(field: string): Promise<number> {
  const text = String(await store!.client.sendCommand(["INFO", "memory"]));
  return Number(new RegExp(`${field}:(\\d+)`).exec(text)![1]);
}

const dbsize = async () => Number(await store!.client.sendCommand(["DBSIZE"]));

describe("session churn on Redis", () => {
  test("10,000 sessions created, filled and expired leave no key behind", {
    skip,
    timeout: 300_000,
  }, async () => {
    broker = new Broker(testBrokerOptions({ maxQueuedMessages: 100 }), store);
    restoreSessions(broker, await store!.sessions.load());
    const keysBefore = await dbsize();
    const memoryBefore = await info("used_memory");

    await fillExpiringSessions(broker, SESSIONS, EXPIRY);
    const keysFull = await dbsize();
    const memoryFull = await info("used_memory");
    assert.equal(broker.sessions.size, SESSIONS + 1, "none expired yet");
    // Per session: meta, subscriptions, queue; plus its own message and the 3 shared ones.
    assert.ok(keysFull >= keysBefore + SESSIONS * 4 + 3, `keys when full: ${keysFull}`);

    // Then every session and message must go.
    const deadline = Date.now() + EXPIRY * 1000 + 60_000;
    while (Date.now() < deadline && (await dbsize()) > keysBefore) {
      await new Promise((r) => setTimeout(r, 250));
    }
    await broker.journal!.settled();
    const keysAfter = await dbsize();
    // Redis shrinks its emptied hash tables in its background cron: give it a few seconds.
    const bound = memoryBefore + (memoryFull - memoryBefore) / 20;
    let memoryAfter = await info("used_memory");
    for (let i = 0; i < 40 && memoryAfter > bound; i++) {
      await new Promise((r) => setTimeout(r, 250));
      memoryAfter = await info("used_memory");
    }
    console.log(
      `churn: ${SESSIONS} sessions; Redis keys ${keysBefore} -> ${keysFull} -> ${keysAfter}, ` +
        `used_memory ${memoryBefore} -> ${memoryFull} -> ${memoryAfter} B`,
    );
    assert.equal(keysAfter, keysBefore);
    assert.equal(broker.sessions.size, 1, "only the (clean) publisher's");
    // Memory is back: within 5% of what the full state took (Redis keeps some table slack).
    assert.ok(memoryAfter <= bound, `used_memory ${memoryAfter} > ${bound}`);
  });
});
