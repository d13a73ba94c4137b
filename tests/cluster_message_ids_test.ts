/**
 * Stored message ids are unique across the nodes of a cluster: they share one Redis, where a
 * message is stored once under its id for every session that holds it. Ids were a per-process
 * count of (ms × 1024 + sequence), so two nodes storing messages in the same millisecond wrote
 * the same key: one node's message replaced the other's (a session then read a message from a
 * topic it never subscribed to) or was deleted with the other's last reference (lost, its
 * publisher acknowledged). QA found both with two offline subscribers whose sessions moved.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { useTwoNodes } from "./helpers/cluster.ts";
import { skipWithoutRedis } from "./helpers/redis_server.ts";
import { type Connected, sleep, subscribe, uid } from "./helpers/mqttjs.ts";

const skip = skipWithoutRedis();
const { onA, onB } = useTwoNodes(skip);
const N = 300;

describe("cluster: stored message ids", { skip }, () => {
  test("messages stored at once on two nodes stay each its own", { timeout: 90_000 }, async () => {
    const run = uid();
    const [x, y] = [`ids-x-${run}`, `ids-y-${run}`];
    const persistent = { protocolVersion: 5 as const, clean: false };
    const offline = async (on: typeof onA, id: string, filter: string) => {
      const c = await on.connect({
        clientId: id,
        ...persistent,
        properties: { sessionExpiryInterval: 3600 },
      });
      await subscribe(c.client, filter, { qos: 1 });
      await c.client.endAsync();
    };
    await offline(onA, x, `ids/${run}/a/#`);
    await offline(onB, y, `ids/${run}/b/#`);
    const pa = await onA.connect({ clientId: `pa-${run}` });
    const pb = await onB.connect({ clientId: `pb-${run}` });
    // Both nodes store QoS 1 messages for their offline session in the same milliseconds.
    const send = async (p: Connected, topic: string, prefix: string) => {
      const acks: Promise<unknown>[] = [];
      for (let i = 0; i < N; i++) {
        acks.push(p.client.publishAsync(topic, `${prefix}${i}`, { qos: 1 }));
        if (i % 10 === 9) await sleep(1);
      }
      await Promise.all(acks);
    };
    await Promise.all([send(pa, `ids/${run}/a/x`, "a-"), send(pb, `ids/${run}/b/x`, "b-")]);
    // Each session is loaded from Redis by the other node.
    const back = (on: typeof onA, id: string) =>
      on.connect({ clientId: id, ...persistent, properties: { sessionExpiryInterval: 3600 } });
    const [gotX, gotY] = [await back(onB, x), await back(onA, y)];
    const payloads = async (c: Connected) => {
      for (let i = 0; i < 100 && c.inbox.messages.length < N; i++) await sleep(50);
      await sleep(300);
      return c.inbox.messages.map((m) => m.payload);
    };
    const check = (got: string[], own: string, name: string) => {
      const mine = new Set(got.filter((p) => p.startsWith(own)));
      const missing = Array.from({ length: N }, (_, i) => `${own}${i}`).filter((p) => !mine.has(p));
      const foreign = got.filter((p) => !p.startsWith(own));
      assert.deepEqual(
        { missing: missing.slice(0, 10), foreign: foreign.slice(0, 10) },
        { missing: [], foreign: [] },
        `${name}: every message of its own (${missing.length} missing), none of the other's ` +
          `(${foreign.length})`,
      );
    };
    check(await payloads(gotX), "a-", "X");
    check(await payloads(gotY), "b-", "Y");
  });
});
