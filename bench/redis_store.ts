/**
 * Figures for the Redis store, in-process against a real redis-server (not a
 * race against other brokers; see run.ts for that):
 *  - Redis commands and round trips per delivered message, 10 online
 *    persistent QoS 1 subscribers, one publisher sending bursts of 100;
 *  - Redis memory per offline session holding 100 queued messages (64-byte
 *    payloads), each session with its own messages, and all sharing them.
 * Usage: deno run -A bench/redis_store.ts   (or bun bench/redis_store.ts)
 */
import { Broker } from "../src/broker/broker.ts";
import type { RedisStore } from "../src/store/redis.ts";
import { openRedisStore, RedisServer } from "../tests/helpers/redis_server.ts";
import { PacketClient, publishPacket, testBrokerOptions } from "../tests/helpers/packet_client.ts";

const redis = await RedisServer.start();
const payload = new Uint8Array(64).fill(120);

async function withBroker<T>(body: (b: Broker, s: RedisStore) => Promise<T>): Promise<T> {
  const store = await openRedisStore(redis.url);
  await store.client.sendCommand(["FLUSHALL"]);
  const broker = new Broker(testBrokerOptions({ maxQueuedMessages: 10_000 }), store);
  try {
    return await body(broker, store);
  } finally {
    await broker.close();
  }
}

async function totalCalls(s: RedisStore): Promise<number> {
  const info = String(await s.client.sendCommand(["INFO", "commandstats"]));
  let n = 0;
  for (const m of info.matchAll(/calls=(\d+)/g)) n += Number(m[1]);
  return n;
}

const usedMemory = async (s: RedisStore) =>
  Number(/used_memory:(\d+)/.exec(String(await s.client.sendCommand(["INFO", "memory"])))![1]);

async function subscriber(b: Broker, id: string, filter: string, online: boolean) {
  const { client } = await PacketClient.connect(b, { clientId: id, clean: false });
  client.send({ type: 8, packetId: 1, subscriptions: [{ topicFilter: filter, qos: 1 }] });
  await client.expect(9);
  if (!online) {
    client.send({ type: 14 });
    await client.expectClosed();
  }
  return client;
}

// 1. Commands and round trips per delivered message.
await withBroker(async (b, store) => {
  const SUBS = 10, MESSAGES = 2000;
  const subs = await Promise.all(
    Array.from({ length: SUBS }, (_, i) => subscriber(b, `s${i}`, "m/t", true)),
  );
  const { client: pub } = await PacketClient.connect(b, { clientId: "pub" });
  await b.journal!.settled();
  const calls0 = await totalCalls(store), trips0 = store.stats.roundTrips;
  const started = performance.now();
  const readers = subs.map(async (s) => {
    for (let i = 0; i < MESSAGES; i++) {
      const p = await s.expect(3, 30_000);
      s.send({ type: 4, packetId: p.packetId! });
    }
  });
  for (let i = 0; i < MESSAGES; i += 100) {
    for (let j = 1; j <= 100; j++) pub.send(publishPacket("m/t", payload, 1, j));
    for (let j = 1; j <= 100; j++) await pub.expect(4, 30_000);
  }
  await Promise.all(readers);
  await b.journal!.settled();
  const ms = performance.now() - started;
  const delivered = SUBS * MESSAGES;
  const calls = (await totalCalls(store)) - calls0 - 1; // minus this INFO
  const trips = store.stats.roundTrips - trips0;
  console.log(
    `${SUBS} online persistent QoS 1 subscribers, ${MESSAGES} messages: ${delivered} delivered in ` +
      `${ms.toFixed(0)} ms; Redis commands per delivered message ${
        (calls / delivered).toFixed(2)
      }, ` +
      `round trips per delivered message ${
        (trips / delivered).toFixed(4)
      } (${trips} Redis requests)`,
  );
});

// 2. Memory per offline session with 100 queued messages.
for (const shared of [false, true]) {
  await withBroker(async (b, store) => {
    const SESSIONS = 200, QUEUED = 100;
    for (let i = 0; i < SESSIONS; i++) {
      await subscriber(b, `o${i}`, shared ? "all" : `own/${i}`, false);
    }
    await b.journal!.settled();
    const before = await usedMemory(store);
    const { client: pub } = await PacketClient.connect(b, { clientId: "pub" });
    let id = 0;
    const topics = shared ? ["all"] : Array.from({ length: SESSIONS }, (_, i) => `own/${i}`);
    for (let k = 0; k < QUEUED; k++) {
      for (const t of topics) pub.send(publishPacket(t, payload, 1, (id++ % 65535) + 1));
      for (let n = 0; n < topics.length; n++) await pub.expect(4, 30_000);
    }
    await b.journal!.settled();
    const after = await usedMemory(store);
    console.log(
      `${SESSIONS} offline sessions x ${QUEUED} queued 64-byte messages` +
        `${shared ? " (the same 100 for all)" : " (each its own)"}: ` +
        `${((after - before) / SESSIONS).toFixed(0)} B of Redis memory per session`,
    );
  });
}
await redis.dispose();
