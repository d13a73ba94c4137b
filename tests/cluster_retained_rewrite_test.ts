/**
 * Redis restarted empty under a cluster whose nodes changed different retained
 * messages while it was down: both nodes write their retained messages back
 * at about the same moment, each topic's writes racing. Whatever Redis ends
 * with for a topic (the write it ordered last), every node must end with the
 * same, without another change of that topic. The node whose subscriptions
 * come back last misses the other's announcements of its write-backs (pub/sub
 * keeps nothing): its resync must take them from Redis, its own outage changes
 * included (it kept those, on 20 topics, in 2 of 13 runs before).
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { retainedOn, useTwoNodes } from "./helpers/cluster.ts";
import { assertSameRetained } from "./helpers/retained_converge.ts";
import { skipWithoutRedis } from "./helpers/redis_server.ts";
import { sleep, uid } from "./helpers/mqttjs.ts";

const skip = skipWithoutRedis();
const { nodes, onA, onB } = useTwoNodes(skip);
const TOPICS = 40;

describe("cluster: retained messages written back into an emptied Redis", { skip }, () => {
  test("every node ends with what Redis holds", { timeout: 120_000 }, async () => {
    const root = `rw/${uid()}`;
    const topics = Array.from({ length: TOPICS }, (_, i) => `${root}/t${i}`);
    // Connected before Redis goes: a new CONNECT needs Redis (the client id is claimed there).
    const pubA = await onA.connect({ clientId: `pa-${uid()}` });
    const pubB = await onB.connect({ clientId: `pb-${uid()}` });
    for (const t of topics) pubA.client.publish(t, "v0", { qos: 0, retain: true });
    for (const on of [onA, onB]) {
      assert.equal(
        (await retainedOn(on, topics.at(-1)!, (m) => m?.payload === "v0"))?.payload,
        "v0",
      );
    }
    await nodes.redis!.stop();
    await sleep(500);
    // QoS 0 needs no store write: each node takes its own change while Redis is away.
    topics.forEach((t, i) => {
      const [c, v] = i % 2 === 0 ? [pubA, "a"] : [pubB, "b"];
      c.client.publish(t, v, { qos: 0, retain: true });
    });
    await sleep(500);
    await nodes.redis!.restart(); // empty: both nodes write their index back
    for (const n of [nodes.a!, nodes.b!]) {
      for (let i = 0; i < 300 && !/bus connected again/.test(n.proc.output); i++) await sleep(100);
    }
    await sleep(2_000);
    await assertSameRetained(onA, onB, nodes.redis!.url, root, topics, 10_000);
  });
});
