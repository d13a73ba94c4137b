/**
 * Acknowledged means kept across nodes: a publisher on node A sends QoS 1 and 2
 * messages to a persistent subscriber whose session lives on node B; node B
 * is killed with SIGKILL mid-stream and the subscriber moves to node A. Every
 * message node A acknowledged must reach it (A acknowledges only once B has
 * stored it; A then loads the session B stored). Figures printed for the record.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { BrokerProcess } from "./helpers/broker_process.ts";
import {
  type ClusterNodeProcess,
  NODE_TIMEOUT_MS,
  nodeYaml,
  OTHER_RUNTIME,
  startNode,
} from "./helpers/cluster.ts";
import { RedisServer, skipWithoutRedis } from "./helpers/redis_server.ts";
import { freePort } from "./helpers/free_port.ts";
import { Clients, sleep, subscribe, uid, withTimeout } from "./helpers/mqttjs.ts";

const skip = skipWithoutRedis();
const OTHER = OTHER_RUNTIME;
const N = 3000;
let redis: RedisServer | undefined;
let a: ClusterNodeProcess | undefined;
let b: BrokerProcess | undefined;
let bPort = 0;
const onA = new Clients(() => a!.url);
const onB = new Clients(() => `mqtt://127.0.0.1:${bPort}`);

before(async () => {
  if (skip) return;
  redis = await RedisServer.start();
  a = await startNode(redis, "001", undefined, `  max-queued-messages: ${N}\n`);
  bPort = await freePort();
  b = new BrokerProcess(nodeYaml(redis, "002", bPort, `  max-queued-messages: ${N}\n`), OTHER);
  await b.start(60_000);
});

after(async () => {
  await onA.closeAll();
  await onB.closeAll();
  await a?.proc.dispose();
  await b?.dispose();
  await redis?.dispose();
});

describe("kill -9 of the subscriber's node", { skip }, () => {
  test(
    "every QoS 1/2 message node A acknowledged reaches the subscriber, which moves to node A; QoS 2 once",
    {
      timeout: 180_000,
    },
    async () => {
      const t = `kill/${uid()}`;
      const subId = `psub-${uid()}`;
      const sub = await onB.connect({ clientId: subId, clean: false });
      await subscribe(sub.client, t, { qos: 2 });
      await withTimeout(sub.client.endAsync(), "subscriber disconnect");

      const pub = await onA.connect({ clientId: `ppub-${uid()}` });
      // Wait until node A routes to node B (the subscription's route has arrived).
      const first = await withTimeout(
        (async () => {
          for (;;) {
            const r = await pub.client.publishAsync(t, "warm", { qos: 1 }).catch(() => undefined);
            if (r && (r as { reasonCode?: number }).reasonCode !== 0x10) return r;
            await sleep(100);
          }
        })(),
        "node A routes to node B",
        20_000,
      );
      assert.ok(first);

      const acked = new Set<string>();
      let stop = false;
      let next = 0;
      const WINDOW = 100;
      const halfway = new Promise<void>((resolve) => {
        const send = () => {
          if (next >= N || stop) return;
          const i = next++;
          const qos = i % 2 === 0 ? 1 : 2;
          const payload = `q${qos}-${i}`;
          pub.client.publish(t, payload, { qos }, (err) => {
            if (err || stop) return;
            acked.add(payload);
            if (acked.size >= N / 3) resolve();
            send();
          });
        };
        for (let w = 0; w < WINDOW; w++) send();
      });
      await withTimeout(halfway, "a third acknowledged", 120_000);
      await b!.kill("SIGKILL");
      // Acknowledgements that were already on their way still count: wait for them, then stop.
      await sleep(3_000);
      stop = true;
      // Once node B's liveness has expired, node A inherits its offline sessions: what is published
      // now is queued for the subscriber on node A, though it has not come back yet.
      await sleep(NODE_TIMEOUT_MS * 2 + 1_000);
      const pub2 = await onA.connect({ clientId: `ppub2-${uid()}` });
      for (let i = 0; i < 100; i++) {
        await pub2.client.publishAsync(t, `after${i}`, { qos: 1 });
        acked.add(`after${i}`);
      }
      const ackedAtEnd = new Set(acked);

      // The subscriber moves to node A, which takes its session from Redis (node B is dead).
      const again = await onA.connect({ clientId: subId, clean: false });
      assert.equal(again.connack.sessionPresent, true);
      let last = -1;
      while (again.inbox.messages.length !== last) {
        last = again.inbox.messages.length;
        await sleep(3_000);
      }
      const got = new Set(again.inbox.messages.map((m) => m.payload));
      const lost = [...ackedAtEnd].filter((p) => !got.has(p));
      const q2 = again.inbox.messages.filter((m) => m.payload.startsWith("q2-")).map((m) =>
        m.payload
      );
      const twice = q2.length - new Set(q2).size;
      console.log(
        `cluster kill -9: acknowledged ${ackedAtEnd.size}, delivered ${got.size}, ` +
          `lost ${lost.length}, QoS 2 delivered twice ${twice}`,
      );
      assert.deepEqual(lost.slice(0, 10), [], `${lost.length} acknowledged messages lost`);
      assert.equal(twice, 0, "QoS 2 never twice");
    },
  );
});
