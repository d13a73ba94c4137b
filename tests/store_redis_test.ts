/**
 * The store contract (src/store/contract.ts) against the Redis store and a
 * real redis-server (tests/helpers/redis_server.ts), plus what only Redis has:
 * key names and hash tags, one round trip per batch, Redis going away.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { runStoreContract } from "../src/store/contract.ts";
import { SessionBatchBuilder } from "../src/store/batch.ts";
import type { RedisStore } from "../src/store/redis.ts";
import {
  openRedisStore,
  redisContractBackend,
  RedisServer,
  redisServerForFile,
} from "./helpers/redis_server.ts";

const redis = redisServerForFile();
const skip = redis.skip;

runStoreContract("redis", {
  skip,
  backend: () => redisContractBackend(redis.server().url),
});

const OPTS = { skip, timeout: 30_000 };

async function commandCalls(store: RedisStore, command: string): Promise<number> {
  const info = String(await store.client.sendCommand(["INFO", "commandstats"]));
  const m = new RegExp(`cmdstat_${command}:calls=(\\d+)`).exec(info);
  return m ? Number(m[1]) : 0;
}

function fill(clientId: string, n: number): SessionBatchBuilder {
  const b = new SessionBatchBuilder()
    .add({ kind: "meta", meta: { clientId, protocolVersion: 4, expiryInterval: 60 } })
    .add({ kind: "subscribe", clientId, sub: { filter: "t/#", qos: 1 } });
  for (let i = 0; i < n; i++) {
    const id = `m${String(i).padStart(6, "0")}`;
    b.message({ id, topic: "t/x", payload: new Uint8Array(8), qos: 1, retain: false });
    b.add({ kind: "enqueue", clientId, delivery: { messageId: id, qos: 1, retain: false } });
  }
  return b;
}

describe("redis store", () => {
  test(
    "keys start with the configured prefixes; one client's keys share its hash tag",
    OPTS,
    async () => {
      const store = await openRedisStore(redis.server().url, {
        clusterSessionHashKey: "my:sessions",
      });
      try {
        await store.client.sendCommand(["FLUSHDB"]);
        const b = fill("dev{1}", 1)
          .add({ kind: "incoming", clientId: "dev{1}", packetId: 2, add: true })
          .add({
            kind: "send",
            clientId: "dev{1}",
            fromQueue: true,
            inflight: { messageId: "m000000", qos: 1, retain: false, packetId: 1, released: true },
          });
        await store.sessions.write(b);
        await store.setRetained("r/t", {
          topic: "r/t",
          payload: new Uint8Array(1),
          qos: 0,
          retain: true,
        });
        const keys = (await store.scan("*")).sort();
        assert.deepEqual(keys, [
          "mqttx:client:pubmsg:{dev{1}}",
          "mqttx:client:pubrelmsg:in:{dev{1}}",
          "mqttx:client:pubrelmsg:{dev{1}}",
          "mqttx:client:topicset:{dev{1}}",
          "mqttx:messageId:{dev{1}}",
          "mqttx:msg:payload:m000000",
          "mqttx:retain:#", // the version counter of retained changes
          "mqttx:retain:r/t",
          "my:sessions:{dev{1}}",
        ]);
        // Redis Cluster hashes the text between the first "{" and the next "}".
        const tags = keys.filter((k) => k.includes("dev")).map((k) => {
          const open = k.indexOf("{");
          return k.slice(open + 1, k.indexOf("}", open + 1));
        });
        assert.deepEqual(new Set(tags), new Set(["dev{1"]));
      } finally {
        await store.close();
      }
    },
  );

  test("a batch of 500 messages to a session is one request: one script call", OPTS, async () => {
    const store = await openRedisStore(redis.server().url);
    try {
      // By SHA once the script is loaded (not its text with every batch).
      while (!store.apply.loaded) await new Promise((r) => setTimeout(r, 10));
      const calls = async () =>
        (await commandCalls(store, "evalsha")) + (await commandCalls(store, "eval")) +
        (await commandCalls(store, "exec"));
      const before = await calls();
      const sha = await commandCalls(store, "evalsha");
      await store.sessions.write(fill("bulk", 500));
      assert.equal(await calls() - before, 1);
      assert.equal(await commandCalls(store, "evalsha") - sha, 1);
      assert.equal(
        (await store.sessions.load()).sessions.find((s) => s.clientId === "bulk")?.queue.length,
        500,
      );
    } finally {
      await store.close();
    }
  });

  test(
    "Redis down: writes are refused at once; back: writes work and retained changes catch up",
    OPTS,
    async () => {
      const lines: string[] = [];
      const store = await openRedisStore(redis.server().url, { log: (l) => lines.push(l) });
      try {
        await store.client.sendCommand(["FLUSHDB"]);
        await redis.server().stop();
        await assert.rejects(store.sessions.write(fill("down", 1)));
        await assert.rejects(
          store.setRetained("kept", {
            topic: "kept",
            payload: new Uint8Array([7]),
            qos: 0,
            retain: true,
          }),
        );
        assert.equal(store.matchRetained("kept").length, 1, "still served from memory");
        await redis.server().restart();
        const deadline = Date.now() + 20_000;
        while (!store.connected && Date.now() < deadline) {
          await new Promise((r) => setTimeout(r, 50));
        }
        assert.ok(store.connected, "reconnected");
        await store.sessions.write(fill("up", 1));
        let retainedKeys: string[] = [];
        while (Date.now() < deadline) {
          retainedKeys = await store.scan(store.keys.retainedPattern());
          if (retainedKeys.length > 0) break;
          await new Promise((r) => setTimeout(r, 50));
        }
        while (retainedKeys.length < 2 && Date.now() < deadline) {
          retainedKeys = await store.scan(store.keys.retainedPattern());
        }
        assert.deepEqual(retainedKeys.sort(), ["mqttx:retain:#", "mqttx:retain:kept"]);
        assert.equal(
          lines.filter((l) => l.includes("unreachable")).length,
          1,
          "logged once per state change",
        );
        assert.equal(lines.filter((l) => l.includes("connected")).length, 2);
      } finally {
        await store.close();
      }
    },
  );
});

describe("redis.url", () => {
  test("a password and a database number in the URL are used", OPTS, async () => {
    const secured = await RedisServer.start({ password: "s3cret" });
    try {
      const store = await openRedisStore(`redis://:s3cret@127.0.0.1:${secured.port}/3`);
      try {
        await store.setRetained("t", {
          topic: "t",
          payload: new Uint8Array(1),
          qos: 0,
          retain: true,
        });
        assert.equal(
          String(await store.client.sendCommand(["CLIENT", "INFO"])).includes("db=3"),
          true,
        );
        // The retained message and the version counter of retained changes.
        assert.equal(Number(await store.client.sendCommand(["DBSIZE"])), 2);
      } finally {
        await store.close();
      }
      await assert.rejects(
        openRedisStore(`redis://:wrong@127.0.0.1:${secured.port}`, { connectTimeoutMs: 2000 }),
      );
    } finally {
      await secured.dispose();
    }
  });
});
