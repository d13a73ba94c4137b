/**
 * A node the others declared dead while it still ran (it stalled longer than node-timeout: a
 * long GC, a frozen VM, an overloaded host) registers again at its next heartbeat. Declaring it
 * dead deletes its routes and its place in `nodes`; its heartbeat only refreshed its liveness
 * key, so the others heard it again ("joined") but with no routes, and every resync dropped
 * what came back: a publisher elsewhere was acknowledged and its subscribers there got nothing
 * (a stress run lost 616-18,434 acknowledged messages so).
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { NODE_TIMEOUT_MS, untilRouted, useTwoNodes } from "./helpers/cluster.ts";
import { skipWithoutRedis } from "./helpers/redis_server.ts";
import { publish, sleep, subscribe, uid } from "./helpers/mqttjs.ts";

const skip = skipWithoutRedis();
const { nodes, onA, onB } = useTwoNodes(skip);

describe("cluster: a node declared dead while it runs", { skip }, () => {
  test("registers again: its subscribers get what other nodes publish", {
    timeout: 90_000,
  }, async () => {
    const t = `stall/${uid()}`;
    const sub = await onA.connect({ clientId: `s-${uid()}` });
    await subscribe(sub.client, `${t}/#`, { qos: 1 });
    const pub = await onB.connect({ clientId: `p-${uid()}` });
    await untilRouted(pub.client, sub.inbox, `${t}/probe`);
    const a = nodes.a!.proc;
    a.freeze(true);
    try {
      const deadline = Date.now() + 20_000;
      while (!/node 001 left or stopped answering/.test(nodes.b!.proc.output)) {
        assert.ok(Date.now() < deadline, "B declares the frozen A dead");
        await sleep(100);
      }
    } finally {
      a.freeze(false);
    }
    // B declared A dead meanwhile (its routes deleted); A's next heartbeats bring them back.
    await untilRouted(pub.client, sub.inbox, `${t}/again`, 10_000);
    await sleep(NODE_TIMEOUT_MS); // past B's next resync, which used to drop them again
    const sent = Array.from({ length: 10 }, (_, i) => `m${i}`);
    for (const m of sent) await publish(pub.client, `${t}/x`, m, { qos: 1 });
    await sleep(500);
    const got = new Set(sub.inbox.messages.map((m) => m.payload));
    assert.deepEqual(sent.filter((m) => !got.has(m)), [], "acknowledged on B, received on A");
    assert.match(a.output, /declared dead by the others/);
  });
});
