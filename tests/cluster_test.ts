/**
 * Several broker processes as one broker over a real redis-server: the
 * second node runs on the other runtime (a mixed Deno + Bun cluster).
 * Cross-node delivery and order, retained, shared subscriptions exactly once,
 * $SYS nodes, takeover both ways, a duplicate broker-id refused, wills of a
 * node killed with SIGKILL.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { Socket } from "node:net";
import { createClient } from "@redis/client";
import {
  NODE_TIMEOUT_MS,
  OTHER_RUNTIME,
  startNode,
  untilRouted,
  useTwoNodes,
} from "./helpers/cluster.ts";
import { shareGroupExactlyOnce, takeoverBothWays } from "./helpers/cluster_scenarios.ts";
import { skipWithoutRedis } from "./helpers/redis_server.ts";
import { Clients, publish, sleep, subscribe, uid, withTimeout } from "./helpers/mqttjs.ts";

const skip = skipWithoutRedis();
const OTHER = OTHER_RUNTIME;
const { nodes, onA, onB } = useTwoNodes(skip);

describe("cluster over Redis (nodes on deno and bun)", { skip }, () => {
  test("a message published on one node reaches subscribers on the other, in order", {
    timeout: 90_000,
  }, async () => {
    const t = `x/${uid()}`;
    const sub = await onB.connect({ clientId: `sub-${uid()}` });
    await subscribe(sub.client, `${t}/#`, { qos: 1 });
    const pub = await onA.connect({ clientId: `pub-${uid()}` });
    await untilRouted(pub.client, sub.inbox, `${t}/probe`);
    const N = 500;
    const sent: Promise<unknown>[] = [];
    for (let i = 0; i < N; i++) {
      sent.push(pub.client.publishAsync(`${t}/seq`, String(i), { qos: 1 }));
    }
    await withTimeout(Promise.all(sent), "every PUBACK", 30_000);
    const got = await sub.inbox.until(
      (ms) => ms.filter((m) => m.topic === `${t}/seq`).length >= N,
      `${N} messages`,
      30_000,
    );
    const seq = got.filter((m) => m.topic === `${t}/seq`).map((m) => Number(m.payload));
    assert.deepEqual(seq, [...Array(N).keys()], "every message, once, in publish order");
  });

  test(
    "a message goes only to nodes that have a matching subscription",
    { timeout: 60_000 },
    async () => {
      const t = `only/${uid()}`;
      // Listen on node B's bus channel the way node B does.
      const tap = await tapChannel(nodes.redis!.port, "mqttx:cluster:chan:002");
      try {
        const sub = await onA.connect({ clientId: `sub-${uid()}` });
        await subscribe(sub.client, t, { qos: 0 });
        const pub = await onA.connect({ clientId: `pub-${uid()}` });
        for (let i = 0; i < 20; i++) await publish(pub.client, t, `local${i}`, { qos: 1 });
        await sub.inbox.payload("local19");
        // Now node B subscribes too: from then on the messages go to it.
        const watcher = await onB.connect({ clientId: `w-${uid()}` });
        await subscribe(watcher.client, t, { qos: 0 });
        await untilRouted(pub.client, watcher.inbox, t);
        // The tap reads its own copy from Redis, which this process may take in after the
        // watcher's (a Bun run failed the assertion made at once).
        await withTimeout(
          (async () => {
            while (!tap.text().includes("probe")) await sleep(20);
          })(),
          "the tap sees what node B gets",
        );
        assert.ok(!tap.text().includes("local"), "nothing went to node B before it subscribed");
      } finally {
        tap.close();
      }
    },
  );

  test("retained messages are the same on every node", { timeout: 60_000 }, async () => {
    const t = `ret/${uid()}`;
    const pub = await onA.connect({ clientId: `pub-${uid()}` });
    await publish(pub.client, t, "kept", { qos: 1, retain: true });
    const deadline = Date.now() + 10_000;
    let seen = "";
    while (Date.now() < deadline && seen !== "kept") {
      const s = await onB.connect({ clientId: `r-${uid()}` });
      await subscribe(s.client, t, { qos: 1 });
      seen = await s.inbox.until((ms) => ms.length > 0, "retained", 1_000)
        .then((ms) => ms[0].payload, () => "");
      await s.client.endAsync();
    }
    assert.equal(seen, "kept");
    // Cleared on B: gone on A too.
    const pubB = await onB.connect({ clientId: `pub-${uid()}` });
    await publish(pubB.client, t, "", { qos: 1, retain: true });
    let still = true;
    for (let i = 0; i < 40 && still; i++) {
      const s = await onA.connect({ clientId: `r-${uid()}` });
      await subscribe(s.client, t, { qos: 1 });
      still = await s.inbox.until((ms) => ms.length > 0, "retained", 250).then(
        () => true,
        () => false,
      );
      await s.client.endAsync();
    }
    assert.equal(still, false, "the cleared retained message is gone on the other node");
  });

  test(
    "a share group gets each message exactly once across nodes",
    { timeout: 90_000 },
    () => shareGroupExactlyOnce(onA, onB),
  );

  test("$SYS/broker/nodes lists both nodes", { timeout: 30_000 }, async () => {
    const s = await onA.connect({ clientId: `sys-${uid()}` });
    await subscribe(s.client, "$SYS/broker/nodes", { qos: 0 });
    const [got] = await s.inbox.count(1);
    const ids = (JSON.parse(got.payload) as { nodes: { id: string }[] }).nodes.map((n) => n.id);
    assert.deepEqual(ids.sort(), ["001", "002"]);
  });

  test("one connection per client id: a connect on the other node takes over (both ways)", {
    timeout: 60_000,
  }, () => takeoverBothWays(onA, onB));

  test("a persistent session follows its client to the other node (session present)", {
    timeout: 60_000,
  }, async () => {
    const id = `move-${uid()}`;
    const t = `move/${uid()}`;
    const first = await onA.connect({ clientId: id, clean: false });
    await subscribe(first.client, t, { qos: 1 });
    await withTimeout(first.client.endAsync(), "disconnect from node A");
    const pub = await onB.connect({ clientId: `pub-${uid()}` });
    // Node B forwards to node A once A's route arrived; each PUBACK means stored on node A.
    let acked = 0;
    const deadline = Date.now() + 20_000;
    while (acked < 5 && Date.now() < deadline) {
      const r = await pub.client.publishAsync(t, `q${acked}`, { qos: 1 }) as {
        reasonCode?: number;
      };
      if (r?.reasonCode !== 0x10) acked++;
      else await sleep(100);
    }
    assert.equal(acked, 5, "node B routes to the session's node A");
    const moved = await onB.connect({ clientId: id, clean: false });
    assert.equal(moved.connack.sessionPresent, true, "the session came along");
    await moved.inbox.until((ms) => ms.filter((m) => m.topic === t).length >= 5, "queued", 15_000);
    assert.deepEqual(moved.inbox.on(t).map((m) => m.payload), ["q0", "q1", "q2", "q3", "q4"]);
    // And it is subscribed here now: a message published on node A reaches it on node B.
    const pubA = await onA.connect({ clientId: `pub-${uid()}` });
    await untilRouted(pubA.client, moved.inbox, t);
  });

  test("a connect of another user on the other node is refused and takes nothing over", {
    timeout: 30_000,
  }, async () => {
    const id = `own-${uid()}`;
    const first = await onA.connect({ clientId: id, protocolVersion: 5, username: "alice" });
    await assert.rejects(
      onB.connect({ clientId: id, protocolVersion: 5, username: "mallory" }),
      /Not authorized/,
      "refused as on one node (CONNACK 0x87)",
    );
    await sleep(500);
    assert.equal(first.client.connected, true);
    assert.deepEqual(first.disconnects, []);
    // Nor the client id's owner record: else node A would not restore alice's session after a
    // restart, and an heir of node B would adopt a second copy of it.
    const redis = createClient({ url: nodes.redis!.url });
    await redis.connect();
    try {
      const owner = await redis.hGet("mqttx:cluster:owner", id);
      assert.equal(owner?.split(" ")[1], "001");
    } finally {
      await redis.quit();
    }
  });

  test("a second node with a live broker-id is refused at start", { timeout: 60_000 }, async () => {
    await assert.rejects(
      startNode(nodes.redis!, "001"),
      /broker-id 001 is already used by a live node/,
    );
  });

  test("wills of a node's clients are published by the survivor after kill -9", {
    timeout: 90_000,
  }, async () => {
    const c = await startNode(nodes.redis!, "003", OTHER);
    const onC = new Clients(() => c.url);
    try {
      const t = `will/${uid()}`;
      const watcher = await onA.connect({ clientId: `w-${uid()}` });
      await subscribe(watcher.client, t, { qos: 1 });
      await onC.connect({
        clientId: `dying-${uid()}`,
        will: { topic: t, payload: "gone", qos: 1, retain: false },
      });
      await sleep(500); // the will reaches Redis
      await c.proc.kill("SIGKILL");
      const will = await watcher.inbox.payload("gone", t, NODE_TIMEOUT_MS * 5 + 10_000);
      assert.equal(will.topic, t);
      await sleep(1_000);
      assert.equal(watcher.inbox.on(t).length, 1, "published once");
    } finally {
      await onC.closeAll();
      await c.proc.dispose();
    }
  });
});

/** A raw Redis connection SUBSCRIBEd to `channel`; `text()` is everything it received. */
async function tapChannel(port: number, channel: string) {
  const s = new Socket();
  let got = "";
  s.on("data", (d: Uint8Array) => (got += new TextDecoder().decode(d)));
  await new Promise<void>((resolve, reject) => {
    s.once("error", reject);
    s.connect(port, "127.0.0.1", resolve);
  });
  s.write(`SUBSCRIBE ${channel}\r\n`);
  await withTimeout(
    (async () => {
      while (!got.includes("subscribe")) await sleep(20);
    })(),
    "redis SUBSCRIBE",
  );
  return { text: () => got, close: () => s.destroy() };
}
