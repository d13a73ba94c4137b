/**
 * The Redis store with a cluster's ownership fence on: the store contract
 * still holds (no writer recorded lets every write through), and a batch
 * whose client has another writer leaves that client's keys untouched, writes
 * the other clients, reports the refused one and takes no message reference
 * for it (nothing leaks).
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { runStoreContract } from "../src/store/contract.ts";
import { SessionBatchBuilder } from "../src/store/batch.ts";
import type { RedisStore } from "../src/store/redis.ts";
import {
  openRedisStore,
  redisContractBackend,
  RedisServer,
  skipWithoutRedis,
} from "./helpers/redis_server.ts";

const skip = skipWithoutRedis();
let server: RedisServer | undefined;
const WRITERS = "test:writer";

before(async () => {
  if (!skip) server = await RedisServer.start();
});

after(async () => {
  await server?.dispose();
});

async function fenced(url = server!.url): Promise<RedisStore> {
  const s = await openRedisStore(url);
  s.sessions.fence = { writers: WRITERS, want: () => " self" };
  return s;
}

runStoreContract("redis (fenced)", {
  skip,
  backend: () => redisContractBackend(server!.url, fenced),
});

describe("redis store, fenced", () => {
  test("a client written by another node is refused; the others are written", {
    skip,
    timeout: 30_000,
  }, async () => {
    const store = await fenced();
    try {
      await store.client.sendCommand(["FLUSHDB"]);
      await store.client.sendCommand(["HSET", WRITERS, "mine", "3 self", "stale", "7 other"]);
      const refused: string[][] = [];
      store.sessions.onFenced = (ids) => refused.push(ids);
      const b = new SessionBatchBuilder();
      b.message({ id: "m1", topic: "t", payload: new Uint8Array(4), qos: 1, retain: false });
      for (const clientId of ["mine", "stale", "new"]) {
        b.add({ kind: "meta", meta: { clientId, protocolVersion: 5, expiryInterval: 60 } });
        b.add({ kind: "enqueue", clientId, delivery: { messageId: "m1", qos: 1, retain: false } });
      }
      // Acknowledged means kept: "stale"'s delivery is not stored, so the batch fails.
      await assert.rejects(store.sessions.write(b), /written by another node/);
      assert.deepEqual(refused, [["stale"]]);
      const state = await store.sessions.load();
      assert.deepEqual(state.sessions.map((s) => s.clientId).sort(), ["mine", "new"]);
      const n = await store.client.sendCommand(["HGET", store.keys.message("m1"), "n"]);
      assert.equal(String(n), "2", "a reference for each written client only");
      // Both references dropped: the message goes (the refused client took none).
      const drops = new SessionBatchBuilder();
      for (const clientId of ["mine", "new"]) {
        drops.add({ kind: "drop", clientId, messageId: "m1" });
      }
      await store.sessions.write(drops);
      assert.equal(Number(await store.client.sendCommand(["EXISTS", store.keys.message("m1")])), 0);
      // Nothing anyone waits for: a refused client's own bookkeeping does not fail a batch
      // (else the stale node would retry its session's removal for ever).
      const bookkeeping = new SessionBatchBuilder();
      bookkeeping.add({ kind: "delete", clientId: "stale" });
      bookkeeping.add({
        kind: "meta",
        meta: { clientId: "mine", protocolVersion: 5, expiryInterval: 9 },
      });
      await store.sessions.write(bookkeeping);
      assert.deepEqual(refused, [["stale"], ["stale"]]);
    } finally {
      await store.close();
    }
  });
});
