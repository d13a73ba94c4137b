/**
 * Redis goes away under a cluster: each node keeps serving its own clients,
 * and once Redis is back (empty: no persistence) the nodes register again,
 * rewrite their routes and deliver across nodes again.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { crossAndLocal, untilRouted, useTwoNodes } from "./helpers/cluster.ts";
import { skipWithoutRedis } from "./helpers/redis_server.ts";
import { publish, sleep, uid } from "./helpers/mqttjs.ts";

const skip = skipWithoutRedis();
const { nodes, onA, onB } = useTwoNodes(skip);

describe("cluster: Redis restarted", { skip }, () => {
  test("local clients are served meanwhile; cross-node delivery resumes", {
    timeout: 120_000,
  }, async () => {
    const t = `rr/${uid()}`;
    const { remote, local, pub } = await crossAndLocal(onA, onB, t);

    await nodes.redis!.stop();
    await sleep(500);
    await publish(pub.client, `${t}/local`, "while-down", { qos: 0 });
    await local.inbox.payload("while-down", `${t}/local`, 10_000);
    // No client id can be claimed cluster-wide meanwhile: the server is unavailable (3.1.1
    // return code 3, which clients retry), not "not authorized" (5, which they may not).
    for (const clean of [false, true]) {
      const refused = await onA.connect({ clientId: `p-${uid()}`, clean, protocolVersion: 4 })
        .then(() => undefined, (e: { code?: number }) => e);
      assert.equal(refused?.code, 3, `CONNACK while Redis is down, clean ${clean} (${refused})`);
    }
    await sleep(3_000); // longer than node-timeout: each node's liveness lapses

    await nodes.redis!.restart();
    remote.inbox.messages.length = 0;
    await untilRouted(pub.client, remote.inbox, t, 60_000);
    assert.ok(remote.inbox.on(t).length > 0);
    assert.match(nodes.a!.proc.output, /cluster: bus unreachable/);
    // Messages may cross again (routes are cached) before the node has rejoined and said so.
    for (let i = 0; i < 300 && !/cluster: bus connected again/.test(nodes.a!.proc.output); i++) {
      await sleep(100);
    }
    assert.match(nodes.a!.proc.output, /cluster: bus connected again/);
  });
});
