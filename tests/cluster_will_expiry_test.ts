/**
 * A 5.0 will with a Message Expiry Interval, published by a surviving node
 * after its client's node was killed: the interval starts when the will is
 * published (MQTT 5.0 3.1.3.2.4), not when the client connected, so a client
 * connected for longer than the interval still has its will delivered.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { type ClusterNodeProcess, NODE_TIMEOUT_MS, startNode } from "./helpers/cluster.ts";
import { RedisServer, skipWithoutRedis } from "./helpers/redis_server.ts";
import { Clients, sleep, subscribe, uid } from "./helpers/mqttjs.ts";

const skip = skipWithoutRedis();
let redis: RedisServer | undefined;
let a: ClusterNodeProcess | undefined;
const onA = new Clients(() => a!.url);

before(async () => {
  if (skip) return;
  redis = await RedisServer.start();
  a = await startNode(redis, "001");
});

after(async () => {
  await onA.closeAll();
  await a?.proc.dispose();
  await redis?.dispose();
});

describe("cluster: wills of a killed node", { skip }, () => {
  test("a will's message expiry counts from its publication, not from the CONNECT", {
    timeout: 90_000,
  }, async () => {
    const c = await startNode(redis!, "003");
    const onC = new Clients(() => c.url);
    try {
      const t = `will-exp/${uid()}`;
      const watcher = await onA.connect({ clientId: `w-${uid()}`, protocolVersion: 5 });
      await subscribe(watcher.client, t, { qos: 1 });
      await onC.connect({
        clientId: `dying-${uid()}`,
        protocolVersion: 5,
        will: {
          topic: t,
          payload: "gone",
          qos: 1,
          retain: false,
          properties: { messageExpiryInterval: 2 },
        },
      });
      await sleep(3_000); // connected for longer than the will's expiry interval
      await c.proc.kill("SIGKILL");
      const will = await watcher.inbox.payload("gone", t, NODE_TIMEOUT_MS * 5 + 10_000);
      assert.equal(will.topic, t);
      // Published just now with 2 s to live: not expired on arrival (the bug sent it with 0).
      const left = will.properties?.messageExpiryInterval;
      assert.ok(left !== undefined && left >= 1, `message expiry interval left: ${left}`);
    } finally {
      await onC.closeAll();
      await c.proc.dispose();
    }
  });
});
