/**
 * Two broker processes as one broker with `cluster.type: kafka`: state in a
 * real redis-server, messages between nodes over librdkafka's mock cluster.
 * The second node runs on the other runtime (a mixed Deno + Bun cluster).
 * Cross-node delivery and order, shared subscriptions exactly once, takeover
 * both ways, a node killed with SIGKILL and restarted skips nothing that was
 * sent to it meanwhile, and Kafka down: local clients still served, one log
 * line per state change, what waited is delivered once Kafka is back.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { untilRouted } from "./helpers/cluster.ts";
import { shareGroupExactlyOnce, takeoverBothWays } from "./helpers/cluster_scenarios.ts";
import {
  kafkaClusterSkip,
  linesOf as lines,
  offlineOnKilledB,
  useKafkaCluster,
} from "./helpers/kafka_cluster.ts";
import type { MockKafka } from "./helpers/kafka_mock.ts";
import { Clients, publish, sleep, subscribe, uid, withTimeout } from "./helpers/mqttjs.ts";
import { freePort } from "./helpers/free_port.ts";

const skip = kafkaClusterSkip();

// Long enough that a node killed and started again is back before the others call it dead.
const { env, onA, onB, startNode } = useKafkaCluster(skip, {
  heartbeatMs: 500,
  nodeTimeoutMs: 8_000,
});

describe("cluster over Kafka (nodes on deno and bun)", { skip }, () => {
  test("a message published on one node reaches subscribers on the other, in order", {
    timeout: 120_000,
  }, async () => {
    assert.match(env.a!.proc.output, /joined over kafka/);
    const t = `x/${uid()}`;
    const sub = await onB.connect({ clientId: `sub-${uid()}` });
    await subscribe(sub.client, `${t}/#`, { qos: 1 });
    const pub = await onA.connect({ clientId: `pub-${uid()}` });
    await untilRouted(pub.client, sub.inbox, `${t}/probe`, 40_000);
    const N = 500;
    const sent: Promise<unknown>[] = [];
    for (let i = 0; i < N; i++) {
      sent.push(pub.client.publishAsync(`${t}/seq`, String(i), { qos: i % 2 === 0 ? 1 : 0 }));
    }
    await withTimeout(Promise.all(sent), "every PUBACK", 30_000);
    const got = await sub.inbox.until(
      (ms) => ms.filter((m) => m.topic === `${t}/seq`).length >= N,
      `${N} messages`,
      30_000,
    );
    const seq = got.filter((m) => m.topic === `${t}/seq`).map((m) => Number(m.payload));
    // Order holds per QoS (MQTT.js itself may send a QoS 0 message before an earlier QoS 1).
    const all = [...Array(N).keys()];
    for (const odd of [0, 1]) {
      assert.deepEqual(
        seq.filter((i) => i % 2 === odd),
        all.filter((i) => i % 2 === odd),
        `every QoS ${1 - odd} message, once, in publish order`,
      );
    }
  });

  test(
    "a share group gets each message exactly once across nodes",
    { timeout: 90_000 },
    () => shareGroupExactlyOnce(onA, onB),
  );

  test("one connection per client id: a connect on the other node takes over (both ways)", {
    timeout: 60_000,
  }, () => takeoverBothWays(onA, onB));

  test("a node killed (SIGKILL) and restarted skips nothing that was sent to it meanwhile", {
    timeout: 180_000,
  }, async () => {
    const id = `keep-${uid()}`;
    const t = `keep/${uid()}`;
    const pub = await offlineOnKilledB({ env, onA, onB }, t, id, 1);
    // Node A still routes to node B (its liveness has not expired): into B's Kafka topic.
    const N = 100;
    const acks = [];
    for (let i = 0; i < N; i++) {
      acks.push(
        pub.client.publishAsync(`${t}/seq`, `m${i}`, { qos: 1 }).then(() => true, () => false),
      );
    }
    await sleep(200);
    await env.b!.proc.start(60_000);
    const back = await onB.connect({ clientId: id, clean: false });
    assert.equal(back.connack.sessionPresent, true, "node B restored the session");
    const got = await back.inbox.until(
      (ms) => ms.filter((m) => m.topic === `${t}/seq`).length >= N,
      `${N} messages sent while node B was down`,
      60_000,
    );
    const seq = got.filter((m) => m.topic === `${t}/seq`).map((m) => m.payload);
    assert.deepEqual(seq, [...Array(N).keys()].map((i) => `m${i}`), "none skipped, in order");
    const acked = (await Promise.all(acks)).filter((ok) => ok).length;
    console.log(`restart: ${acked}/${N} PUBACKs succeeded (the rest timed out while B was down)`);
    assert.equal(lines(env.a!, "took over").length, 0, "node A never took node B's sessions");
  });

  test("a node whose Kafka is unreachable at start still starts and serves its clients", {
    timeout: 90_000,
  }, async () => {
    const nowhere = { bootstrap: `127.0.0.1:${await freePort()}` } as MockKafka;
    const c = await startNode("003", undefined, nowhere);
    const onC = new Clients(() => c.url);
    try {
      const t = `alone/${uid()}`;
      const sub = await onC.connect({ clientId: `s-${uid()}` });
      await subscribe(sub.client, t, { qos: 1 });
      const pub = await onC.connect({ clientId: `p-${uid()}` });
      for (let i = 0; i < 10; i++) await publish(pub.client, t, `a${i}`, { qos: 1 });
      await sub.inbox.payload("a9", t, 15_000);
      const deadline = Date.now() + 30_000;
      while (lines(c, "cannot read from Kafka").length === 0 && Date.now() < deadline) {
        await sleep(200);
      }
      await sleep(3_000); // retries go on; each must not log again
      assert.equal(lines(c, "cannot read from Kafka").length, 1, c.proc.output);
    } finally {
      await onC.closeAll();
      await c.proc.dispose();
    }
  });

  test("Kafka down: local clients still served, one log line per change, then caught up", {
    timeout: 180_000,
  }, async () => {
    const t = `down/${uid()}`;
    const remote = await onB.connect({ clientId: `r-${uid()}` });
    await subscribe(remote.client, `${t}/x`, { qos: 1 });
    const local = await onA.connect({ clientId: `l-${uid()}` });
    await subscribe(local.client, `${t}/local`, { qos: 1 });
    const pub = await onA.connect({ clientId: `p-${uid()}`, protocolVersion: 5 });
    await untilRouted(pub.client, remote.inbox, `${t}/x`, 40_000);
    await env.kafka!.down();
    // Cross-node: waits in node A's buffer (its PUBACK waits for node B's answer).
    const held = pub.client.publishAsync(`${t}/x`, "while-down", { qos: 1 }).catch(() => {});
    // Another publisher: acknowledgements to one connection keep their order, so pub's next
    // PUBACKs wait for that one.
    const pub2 = await onA.connect({ clientId: `p2-${uid()}` });
    for (let i = 0; i < 20; i++) await publish(pub2.client, `${t}/local`, `l${i}`, { qos: 1 });
    await local.inbox.payload("l19", `${t}/local`, 15_000);
    await sleep(3_000); // retries happen; each must not log again
    assert.equal(lines(env.a!, "cannot send over Kafka").length, 1, env.a!.proc.output);
    await env.kafka!.up();
    await remote.inbox.payload("while-down", `${t}/x`, 60_000);
    await held;
    assert.equal(lines(env.a!, "sending over Kafka again").length, 1);
    assert.equal(lines(env.a!, "cannot send over Kafka").length, 1);
    for (const n of [env.a!, env.b!]) {
      const down = lines(n, "cannot read from Kafka").length;
      const up = lines(n, "reading from Kafka").length;
      assert.ok(down <= up, `each lost read is followed by one 'reading' line (${down}/${up})`);
    }
  });
});
