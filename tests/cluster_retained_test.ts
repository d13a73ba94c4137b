/**
 * Retained messages across two real nodes (one per runtime): a 5.0 retained
 * message arrives on the other node with its properties and its Message
 * Expiry, and clearing a retained message through the admin API clears it on
 * every node (and in Redis).
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { createClient } from "@redis/client";
import { retainedOn, useTwoNodes } from "./helpers/cluster.ts";
import { skipWithoutRedis } from "./helpers/redis_server.ts";
import { freePort } from "./helpers/free_port.ts";
import { publish, sleep, uid } from "./helpers/mqttjs.ts";

const skip = skipWithoutRedis();
const httpPorts = new Map<string, number>();
const { nodes, onA, onB } = useTwoNodes(skip, {
  extra: async (id) => {
    const port = await freePort();
    httpPorts.set(id, port);
    return `  http:\n    enable: true\n    host: 127.0.0.1\n    port: ${port}\n`;
  },
});

function api(id: string, path: string, init?: RequestInit): Promise<Response> {
  return fetch(`http://127.0.0.1:${httpPorts.get(id)}${path}`, init);
}

async function retainedTopics(id: string, filter: string): Promise<string[]> {
  const r = await api(id, `/api/v1/retained?filter=${encodeURIComponent(filter)}`);
  assert.equal(r.status, 200);
  return ((await r.json()) as { data: { topic: string }[] }).data.map((m) => m.topic);
}

describe("cluster: retained messages across nodes", { skip }, () => {
  test("a 5.0 retained message keeps its properties and expiry on the other node", {
    timeout: 60_000,
  }, async () => {
    const t = `rp/${uid()}`;
    const pub = await onA.connect({ clientId: `pub-${uid()}`, protocolVersion: 5 });
    await publish(pub.client, t, "with-props", {
      qos: 1,
      retain: true,
      properties: {
        messageExpiryInterval: 300,
        contentType: "text/plain",
        responseTopic: "reply/here",
        correlationData: Buffer.from("corr-1"),
        payloadFormatIndicator: true,
        userProperties: { origin: "node-a" },
      },
    });
    const got = await retainedOn(onB, t, (m) => m?.payload === "with-props");
    assert.equal(got?.payload, "with-props", "the retained message reached node B");
    const p = got!.properties ?? {};
    assert.equal(p.contentType, "text/plain");
    assert.equal(p.responseTopic, "reply/here");
    assert.equal(String(p.correlationData), "corr-1");
    assert.equal(p.payloadFormatIndicator, true);
    assert.deepEqual({ ...p.userProperties }, { origin: "node-a" });
    const left = p.messageExpiryInterval;
    assert.ok(left !== undefined && left > 200 && left <= 300, `expiry kept (got ${left})`);
    assert.equal(got!.retain, true);
  });

  test("a retained message whose expiry passed is gone on the other node too", {
    timeout: 60_000,
  }, async () => {
    const t = `rx/${uid()}`;
    const pub = await onA.connect({ clientId: `pub-${uid()}`, protocolVersion: 5 });
    await publish(pub.client, t, "short", {
      qos: 1,
      retain: true,
      properties: { messageExpiryInterval: 2 },
    });
    assert.equal((await retainedOn(onB, t, (m) => m !== undefined))?.payload, "short");
    await sleep(2_500);
    assert.equal(await retainedOn(onB, t, (m) => m === undefined), undefined, "expired on B");
  });

  test("DELETE /api/v1/retained/{topic} on one node clears it on both and in Redis", {
    timeout: 60_000,
  }, async () => {
    const t = `rd/${uid()}`;
    const pub = await onA.connect({ clientId: `pub-${uid()}` });
    await publish(pub.client, t, "to-delete", { qos: 1, retain: true });
    assert.equal((await retainedOn(onB, t, (m) => m !== undefined))?.payload, "to-delete");
    assert.deepEqual(await retainedTopics("002", t), [t]);

    const r = await api("001", `/api/v1/retained/${encodeURIComponent(t)}`, { method: "DELETE" });
    assert.equal(r.status, 200);
    await r.body?.cancel();
    assert.deepEqual(await retainedTopics("001", t), [], "gone on node A");
    assert.equal(await retainedOn(onB, t, (m) => m === undefined), undefined, "gone on node B");
    assert.deepEqual(await retainedTopics("002", t), []);
    const redis = createClient({ url: nodes.redis!.url });
    await redis.connect();
    try {
      const keys = await redis.keys("*");
      assert.deepEqual(keys.filter((k) => k.includes(t)), [], "no key left in Redis");
    } finally {
      await redis.close();
    }
  });
});
