/**
 * Retained messages changed while Redis was down: each node keeps serving
 * its own clients (a retained QoS 0 publish still works there), and once
 * Redis is back every node has the changes the other made meanwhile, in both
 * directions. Redis keeps its data here (append-only file); the test of an
 * emptied Redis is tests/cluster_redis_restart_test.ts.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { retainedOn, useTwoNodes } from "./helpers/cluster.ts";
import { skipWithoutRedis } from "./helpers/redis_server.ts";
import { sleep, subscribe, uid } from "./helpers/mqttjs.ts";
import type { Clients, Connected } from "./helpers/mqttjs.ts";

const skip = skipWithoutRedis();
const { nodes, onA, onB } = useTwoNodes(skip, { redis: { appendonly: true } });

/** Publish a retained QoS 0 message (QoS 0 needs no store write to be accepted). */
function retain(c: Connected, topic: string, payload: string): void {
  c.client.publish(topic, payload, { qos: 0, retain: true });
}

describe("cluster: retained changes made while Redis was down", { skip }, () => {
  test("reach the other node once Redis is back, both ways", { timeout: 120_000 }, async () => {
    const t = `rs/${uid()}`;
    // Connected before Redis goes: a new CONNECT needs Redis (the client id is claimed there).
    const pubA = await onA.connect({ clientId: `pa-${uid()}` });
    const pubB = await onB.connect({ clientId: `pb-${uid()}` });
    const watchA = await onA.connect({ clientId: `wa-${uid()}` });
    retain(pubA, `${t}/1`, "one");
    retain(pubA, `${t}/2`, "two");
    for (const on of [onA, onB]) {
      for (const [n, v] of [["1", "one"], ["2", "two"]]) {
        assert.equal((await retainedOn(on, `${t}/${n}`, (m) => m?.payload === v))?.payload, v);
      }
    }

    await nodes.redis!.stop();
    await sleep(500);
    retain(pubA, `${t}/1`, "one-changed-on-a"); // changed on A
    retain(pubB, `${t}/2`, ""); // cleared on B
    retain(pubB, `${t}/3`, "three-on-b"); // new on B
    // A serves its own change at once.
    await sleep(200);
    await subscribe(watchA.client, `${t}/1`, { qos: 0 });
    await watchA.inbox.payload("one-changed-on-a", `${t}/1`);

    await nodes.redis!.restart();
    const want: [Clients, string, string | undefined][] = [
      [onB, "1", "one-changed-on-a"],
      [onA, "2", undefined],
      [onA, "3", "three-on-b"],
      [onA, "1", "one-changed-on-a"],
      [onB, "2", undefined],
      [onB, "3", "three-on-b"],
    ];
    for (const [on, n, v] of want) {
      const got = await retainedOn(on, `${t}/${n}`, (m) => m?.payload === v, 60_000);
      assert.equal(got?.payload, v, `${t}/${n} on node ${on === onA ? "A" : "B"}`);
    }
  });
});
