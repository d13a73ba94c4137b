/**
 * Two cluster nodes' Redis stores resync their retained index after Redis
 * came back empty (restarted without persistence). The node that finds the
 * marker missing writes its index back; a node resyncing at the same moment
 * must not take a half-written Redis for the truth and delete from its own
 * index the retained messages not written back yet. And the versions Redis
 * gives retained changes between two stores: an expiry deletes only the
 * version that expired.
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
      await a.resyncRetained(); // the cluster's join: sets the marker
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
      await Promise.all([a.resyncRetained(), b.resyncRetained()]);

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
      await a.resyncRetained();
      const topic = "keep/me";
      await a.setRetained(topic, { topic, payload: enc.encode("x"), qos: 0, retain: true });
      await a.client.sendCommand(["FLUSHDB"]); // Redis restarted empty
      c = await openRedisStore(redis.server().url); // a new node: nothing to write back
      await c.resyncRetained(); // ...and it resyncs first
      await a.resyncRetained();
      assert.equal(a.retainedOf(topic)?.topic, topic, "node A kept its message");
      const d = await openRedisStore(redis.server().url);
      try {
        assert.equal(d.retainedOf(topic)?.topic, topic, "and wrote it back to Redis");
      } finally {
        await d.close();
      }
      // Same generation: a topic cleared in Redis meanwhile is cleared here too.
      await c.setRetained(topic, undefined);
      await a.resyncRetained();
      assert.equal(a.retainedOf(topic), undefined);
    } finally {
      await c?.close();
      await a.close();
    }
  });
});

describe("redis store: a resync takes what Redis ordered last", () => {
  test("over this node's own written change and a change heard while it runs", {
    skip,
    timeout: 30_000,
  }, async () => {
    const a = await openRedisStore(redis.server().url);
    const b = await openRedisStore(redis.server().url);
    const msg = (topic: string, p: string) => ({
      topic,
      payload: enc.encode(p),
      qos: 0 as const,
      retain: true,
    });
    const text = (topic: string) => new TextDecoder().decode(a.retainedOf(topic)!.payload);
    try {
      await a.resyncRetained(); // the marker: a kept Redis, versions compared
      // Node A's own change (as one made during an outage and written when Redis came back),
      // then node B's later one, whose announcement A missed (it was not listening yet).
      await a.setRetained("rv/own", msg("rv/own", "a"));
      await b.setRetained("rv/own", msg("rv/own", "b"));
      // A change of another topic Redis ordered before B's last one, heard by A only while its
      // resync runs (a third node announcing what it held): older than what A reads.
      const older = await b.setRetained("rv/heard", msg("rv/heard", "older"));
      assert.equal(typeof older, "number");
      await b.setRetained("rv/heard", msg("rv/heard", "newest"));
      const resync = a.resyncRetained();
      a.cacheRetained("rv/heard", msg("rv/heard", "older"), older as number);
      await resync;
      assert.equal(text("rv/own"), "b", "B's later write over A's own");
      assert.equal(text("rv/heard"), "newest", "what Redis holds over an older change heard");
    } finally {
      await a.close();
      await b.close();
    }
  });
});

describe("redis store: retained versions between two nodes' stores", () => {
  test("an expiry on one node never deletes a newer message another node wrote", {
    skip,
    timeout: 30_000,
  }, async () => {
    const a = await openRedisStore(redis.server().url);
    const b = await openRedisStore(redis.server().url);
    const key = a.keys.retained("ex/t");
    try {
      const soon = Date.now() + 300;
      const v1 = await a.setRetained("ex/t", {
        topic: "ex/t",
        payload: enc.encode("old"),
        qos: 0,
        retain: true,
        expiresAt: soon,
      });
      // Node B writes a newer message; node A has not heard of it yet when its copy expires.
      const v2 = await b.setRetained("ex/t", {
        topic: "ex/t",
        payload: enc.encode("new"),
        qos: 0,
        retain: true,
      });
      assert.ok(typeof v1 === "number" && typeof v2 === "number" && v2 > v1, `${v1} < ${v2}`);
      await new Promise((r) => setTimeout(r, 400));
      assert.deepEqual(a.matchRetained("ex/t"), [], "expired on A");
      await a.client.sendCommand(["PING"]); // A's delete (if any) has run
      assert.equal(String(await a.client.sendCommand(["HGET", key, "p"])), "new");
      // B's message, heard late, is taken: newer than anything A holds for the topic.
      a.cacheRetained("ex/t", b.retainedOf("ex/t"), v2);
      assert.equal(new TextDecoder().decode(a.retainedOf("ex/t")!.payload), "new");
      // And A's expiry of its own unchanged message does delete it in Redis.
      await a.setRetained("ex/u", {
        topic: "ex/u",
        payload: enc.encode("x"),
        qos: 0,
        retain: true,
        expiresAt: Date.now() + 100,
      });
      await new Promise((r) => setTimeout(r, 200));
      assert.deepEqual(a.matchRetained("ex/u"), []);
      await a.client.sendCommand(["PING"]);
      assert.equal(Number(await a.client.sendCommand(["EXISTS", a.keys.retained("ex/u")])), 0);
    } finally {
      await a.close();
      await b.close();
    }
  });
});
