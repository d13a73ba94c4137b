/**
 * Concurrent retained writes on two real nodes: MQTT.js publishers on node A
 * and on node B write (and clear, with an empty retained payload) the same
 * topics at the same moment, many times over; then a fresh subscriber on each
 * node and Redis itself must report the same retained message for every topic.
 * Shared by the Redis-bus and the Kafka-bus tests.
 */
import assert from "node:assert/strict";
import { createClient } from "@redis/client";
import type { MqttClient } from "mqtt";
import { type Clients, sleep, subscribe, uid, withTimeout } from "./mqttjs.ts";

const TOPICS = 8;
const ROUNDS = 30;
/** Publishers per node: their writes race each other and the other node's. */
const PUBLISHERS = 3;
/** The retained key prefix of the default config (src/config/defaults.ts). */
const RETAIN_PREFIX = "mqttx:retain:";

/** What `on` delivers to a fresh subscriber of `root/#`: topic -> payload. */
async function retainedSeen(on: Clients, root: string): Promise<Map<string, string>> {
  const s = await on.connect({ clientId: `conv-${uid()}`, protocolVersion: 5 });
  try {
    await subscribe(s.client, `${root}/#`, { qos: 0 });
    // Retained messages come right after the SUBACK; give them a moment to all arrive.
    await sleep(300);
    return new Map(s.inbox.messages.map((m) => [m.topic, m.payload]));
  } finally {
    await s.client.endAsync();
  }
}

async function retainedInRedis(url: string, root: string): Promise<Map<string, string>> {
  const redis = createClient({ url });
  await redis.connect();
  try {
    const out = new Map<string, string>();
    for (const key of await redis.keys(`${RETAIN_PREFIX}${root}/*`)) {
      const p = await redis.hGet(key, "p");
      if (p !== null && p !== undefined) out.set(key.slice(RETAIN_PREFIX.length), p);
    }
    return out;
  } finally {
    await redis.close();
  }
}

const show = (m: Map<string, string>) =>
  JSON.stringify([...m].sort(([a], [b]) => a.localeCompare(b)));

/**
 * Race retained writes on `onA` and `onB`, then wait (bounded) until both
 * nodes and Redis agree; fails with what each reported when they never do.
 */
export async function raceRetainedWrites(onA: Clients, onB: Clients, redisUrl: string) {
  const root = `conv/${uid()}`;
  const topics = Array.from({ length: TOPICS }, (_, i) => `${root}/t${i}`);
  const pubs: { client: MqttClient; name: string }[] = [];
  for (const [name, on] of [["a", onA], ["b", onB]] as const) {
    for (let i = 0; i < PUBLISHERS; i++) {
      const c = await on.connect({ clientId: `w-${name}${i}-${uid()}` });
      pubs.push({ client: c.client, name: `${name}${i}` });
    }
  }
  // Every publisher writes every topic each round, without waiting between writes: the nodes'
  // writes of one topic overlap in flight. Publisher b2 (node B's
  // last) clears a topic now and then.
  const sent: Promise<unknown>[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    for (const { client, name } of pubs) {
      for (const [i, t] of topics.entries()) {
        // Clears race the writes too, in the last round as well.
        const payload = name === "b2" && (round + i) % 4 === 0 ? "" : `${name}-${round}`;
        sent.push(client.publishAsync(t, payload, { qos: 1, retain: true }));
      }
    }
    // Each round ends acknowledged: the next starts on both nodes at the same moment again.
    await withTimeout(Promise.all(sent.splice(0)), `round ${round} acknowledged`, 30_000);
  }
  await assertSameRetained(onA, onB, redisUrl, root, topics);
}

/**
 * Wait (bounded) until a fresh subscriber of `root/#` on each node and Redis itself report the
 * same retained message for every one of `topics`; fails with what each reported otherwise.
 */
export async function assertSameRetained(
  onA: Clients,
  onB: Clients,
  redisUrl: string,
  root: string,
  topics: readonly string[],
  ms = 15_000,
): Promise<void> {
  let a = new Map<string, string>(), b = a, r = a;
  const deadline = Date.now() + ms;
  do {
    await sleep(500); // announcements still crossing the bus
    [a, b, r] = await Promise.all([
      retainedSeen(onA, root),
      retainedSeen(onB, root),
      retainedInRedis(redisUrl, root),
    ]);
  } while ((show(a) !== show(r) || show(b) !== show(r)) && Date.now() < deadline);
  const differing = topics.filter((t) => a.get(t) !== r.get(t) || b.get(t) !== r.get(t))
    .map((t) => `${t}: A=${a.get(t)} B=${b.get(t)} Redis=${r.get(t)}`);
  assert.deepEqual(differing, [], "every node reports what Redis holds");
}
