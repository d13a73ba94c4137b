/**
 * Two cluster nodes' Redis stores resync their retained index after Redis
 * came back empty (restarted without persistence). The node that finds the
 * marker missing writes its index back; a node resyncing at the same moment
 * must not take a half-written Redis for the truth and delete from its own
 * index the retained messages not written back yet.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { openRedisStore, redisServerForFile } from "./helpers/redis_server.ts";

const redis = redisServerForFile();
const skip = redis.skip;

const N = 1500;
const enc = new TextEncoder();

describe("redis store: retained resync after Redis lost its data", () => {
  test("two nodes resyncing at once both keep every retained message", {
    skip,
    timeout: 60_000,
  }, async () => {
    const a = await openRedisStore(redis.server().url);
    let b: Awaited<ReturnType<typeof openRedisStore>> | undefined;
    try {
      await a.client.sendCommand(["FLUSHDB"]);
      await a.resyncRetained(new Set()); // the cluster's join: sets the marker
      for (let i = 0; i < N; i += 100) {
        await Promise.all(Array.from({ length: 100 }, (_, j) => {
          const topic = `rs/${i + j}`;
          return a.setRetained(topic, {
            topic,
            payload: enc.encode(`v${i + j}`),
            qos: 1,
            retain: true,
            properties: { contentType: "text/plain" },
            expiresAt: Date.now() + 3_600_000,
          });
        }));
      }
      b = await openRedisStore(redis.server().url);
      assert.equal(b.retainedCount(), N);

      await a.client.sendCommand(["FLUSHDB"]); // Redis restarted empty
      await Promise.all([a.resyncRetained(new Set()), b.resyncRetained(new Set())]);

      assert.equal(a.retainedCount(), N, "node A's index");
      assert.equal(b.retainedCount(), N, "node B's index");
      const m = b.retainedOf("rs/7");
      assert.equal(m?.properties?.contentType, "text/plain");
      assert.ok(m?.expiresAt !== undefined);
      // Redis holds them all again, for a node that starts next.
      const c = await openRedisStore(redis.server().url);
      try {
        assert.equal(c.retainedCount(), N, "what Redis holds");
      } finally {
        await c.close();
      }
    } finally {
      await b?.close();
      await a.close();
    }
  });
  test("a node that starts empty and seeds a wiped Redis first does not wipe the others", {
    skip,
    timeout: 60_000,
  }, async () => {
    const a = await openRedisStore(redis.server().url);
    let c: Awaited<ReturnType<typeof openRedisStore>> | undefined;
    try {
      await a.client.sendCommand(["FLUSHDB"]);
      await a.resyncRetained(new Set());
      const topic = "keep/me";
      await a.setRetained(topic, { topic, payload: enc.encode("x"), qos: 0, retain: true });
      await a.client.sendCommand(["FLUSHDB"]); // Redis restarted empty
      c = await openRedisStore(redis.server().url); // a new node: nothing to write back
      await c.resyncRetained(new Set()); // ...and it resyncs first
      await a.resyncRetained(new Set());
      assert.equal(a.retainedOf(topic)?.topic, topic, "node A kept its message");
      const d = await openRedisStore(redis.server().url);
      try {
        assert.equal(d.retainedOf(topic)?.topic, topic, "and wrote it back to Redis");
      } finally {
        await d.close();
      }
      // Same generation: a topic cleared in Redis meanwhile is cleared here too.
      await c.setRetained(topic, undefined);
      await a.resyncRetained(new Set());
      assert.equal(a.retainedOf(topic), undefined);
    } finally {
      await c?.close();
      await a.close();
    }
  });
});
