/**
 * Ownership fencing inside the store's writes: a node that still holds a
 * session after another node took the client over (it was cut off and missed
 * the kick) has its writes of that session refused by Redis; it drops the
 * session, closes the connection (5.0: DISCONNECT 0x8E) and logs why, and the
 * session in Redis stays as the new owner found it.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { createClient } from "@redis/client";
import { useTwoNodes } from "./helpers/cluster.ts";
import { skipWithoutRedis } from "./helpers/redis_server.ts";
import { subscribe, uid, withTimeout } from "./helpers/mqttjs.ts";

const skip = skipWithoutRedis();
const { nodes, onA } = useTwoNodes(skip);

describe("cluster: a stale owner's session writes are refused", { skip }, () => {
  test("node A's write after node B took the client over is refused", {
    timeout: 60_000,
  }, async () => {
    const id = `fence-${uid()}`;
    const t = `fence/${uid()}`;
    const session = { clientId: id, clean: false, protocolVersion: 5 as const };
    const x = await onA.connect({ ...session, properties: { sessionExpiryInterval: 300 } });
    await subscribe(x.client, t, { qos: 1 });
    const redis = createClient({ url: nodes.redis!.url });
    await redis.connect();
    try {
      const inflight = `mqttx:client:pubmsg:{${id}}`;
      const queue = `mqttx:client:pubmsg:q:{${id}}`;
      // Node B claims the client while node A hears nothing of it: exactly B's claim and commit.
      const epoch = await redis.incr("mqttx:cluster:epoch");
      await redis.hSet("mqttx:cluster:owner", id, `${epoch} 002`);
      await redis.hSet("mqttx:cluster:writer", id, `${epoch} 002`);

      const pub = await onA.connect({ clientId: `pub-${uid()}` });
      pub.client.publish(t, "after-takeover", { qos: 1 });
      await withTimeout(x.closed, "node A closes the stale session's connection", 15_000);
      assert.equal(x.disconnects[0]?.reasonCode, 0x8e, "DISCONNECT Session taken over");
      assert.match(nodes.a!.proc.output, new RegExp(`client ${id} is written by another node`));
      assert.equal(await redis.hLen(inflight), 0, "nothing of it in flight in Redis");
      assert.equal(await redis.hLen(queue), 0, "nothing of it queued in Redis");

      // The session stays in Redis as it was stored before the takeover, for the new owner.
      assert.equal(await redis.exists(`mqttx:session:key:{${id}}`), 1, "the session is kept");
      assert.deepEqual(await redis.hKeys(`mqttx:client:topicset:{${id}}`), [t]);
    } finally {
      await redis.close();
    }
  });
});
