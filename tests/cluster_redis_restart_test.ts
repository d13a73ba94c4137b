/**
 * Redis goes away under a cluster: each node keeps serving its own clients,
 * and once Redis is back (empty: no persistence) the nodes register again,
 * rewrite their routes and deliver across nodes again.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { THIS_RUNTIME } from "./helpers/broker_process.ts";
import { type ClusterNodeProcess, startNode, untilRouted } from "./helpers/cluster.ts";
import { RedisServer, skipWithoutRedis } from "./helpers/redis_server.ts";
import { Clients, publish, sleep, subscribe, uid } from "./helpers/mqttjs.ts";

const skip = skipWithoutRedis();
let redis: RedisServer | undefined;
let a: ClusterNodeProcess | undefined;
let b: ClusterNodeProcess | undefined;
const onA = new Clients(() => a!.url);
const onB = new Clients(() => b!.url);

before(async () => {
  if (skip) return;
  redis = await RedisServer.start();
  a = await startNode(redis, "001");
  b = await startNode(redis, "002", THIS_RUNTIME === "deno" ? "bun" : "deno");
});

after(async () => {
  await onA.closeAll();
  await onB.closeAll();
  await a?.proc.dispose();
  await b?.proc.dispose();
  await redis?.dispose();
});

describe("cluster: Redis restarted", { skip }, () => {
  test("local clients are served meanwhile; cross-node delivery resumes", {
    timeout: 120_000,
  }, async () => {
    const t = `rr/${uid()}`;
    const remote = await onB.connect({ clientId: `rsub-${uid()}` });
    await subscribe(remote.client, t, { qos: 0 });
    const local = await onA.connect({ clientId: `lsub-${uid()}` });
    await subscribe(local.client, `${t}/local`, { qos: 0 });
    const pub = await onA.connect({ clientId: `pub-${uid()}` });
    await untilRouted(pub.client, remote.inbox, t, 20_000);

    await redis!.stop();
    await sleep(500);
    await publish(pub.client, `${t}/local`, "while-down", { qos: 0 });
    await local.inbox.payload("while-down", `${t}/local`, 10_000);
    await sleep(3_000); // longer than node-timeout: each node's liveness lapses

    await redis!.restart();
    remote.inbox.messages.length = 0;
    await untilRouted(pub.client, remote.inbox, t, 60_000);
    assert.ok(remote.inbox.on(t).length > 0);
    assert.match(a!.proc.output, /cluster: bus unreachable/);
    assert.match(a!.proc.output, /cluster: bus connected again/);
  });
});
