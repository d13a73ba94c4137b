/**
 * `cluster.reuse-port`: two nodes (one per runtime) bind the same MQTT port
 * with SO_REUSEPORT, the kernel spreads new connections over both, and a
 * message crosses from whichever node the publisher landed on to the other's
 * subscribers. Which node a client is on: each node's admin API lists them.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { nodeYaml, OTHER_RUNTIME } from "./helpers/cluster.ts";
import { BrokerProcess } from "./helpers/broker_process.ts";
import { RedisServer, skipWithoutRedis } from "./helpers/redis_server.ts";
import { freePort } from "./helpers/free_port.ts";
import { Clients, publish, subscribe, uid } from "./helpers/mqttjs.ts";

const skip = skipWithoutRedis();

describe("cluster: two nodes share one port (reuse-port)", { skip }, () => {
  test("both bind it and both accept clients", { timeout: 120_000 }, async () => {
    const redis = await RedisServer.start();
    const port = await freePort();
    const procs: BrokerProcess[] = [];
    const http: number[] = [];
    const clients = new Clients(() => `mqtt://127.0.0.1:${port}`);
    try {
      for (const [id, runtime] of [["001", undefined], ["002", OTHER_RUNTIME]] as const) {
        const h = await freePort();
        http.push(h);
        const extra = `    reuse-port: true\n  http:\n    enable: true\n    host: 127.0.0.1\n` +
          `    port: ${h}\n`;
        const proc = new BrokerProcess(nodeYaml(redis, id, port, extra), runtime);
        procs.push(proc);
        assert.equal(await proc.start(60_000), port, `node ${id} listens on the shared port`);
      }
      const tag = uid();
      const all = [];
      for (let i = 0; i < 24; i++) all.push(await clients.connect({ clientId: `${tag}-${i}` }));
      const counts = await Promise.all(http.map(async (h) => {
        const r = await fetch(`http://127.0.0.1:${h}/api/v1/clients?prefix=${tag}-`);
        return ((await r.json()) as { total: number }).total;
      }));
      assert.equal(counts[0] + counts[1], 24, `every client on one node (${counts})`);
      assert.ok(counts[0] > 0 && counts[1] > 0, `both nodes accepted clients (${counts})`);
      // Every subscriber gets a message, whichever node it and the publisher are on.
      const t = `rp/${tag}`;
      for (const c of all) await subscribe(c.client, t, { qos: 1 });
      const deadline = Date.now() + 30_000;
      let n = 0;
      while (Date.now() < deadline && all.some((c) => c.inbox.on(t).length === 0)) {
        await publish(all[0].client, t, `m${n++}`, { qos: 1 });
        await new Promise((r) => setTimeout(r, 200));
      }
      assert.ok(all.every((c) => c.inbox.on(t).length > 0), "every subscriber got it");
    } finally {
      await clients.closeAll();
      for (const p of procs) await p.dispose();
      await redis.dispose();
    }
  });
});
