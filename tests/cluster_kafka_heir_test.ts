/**
 * `cluster.type: kafka`, a node that dies and stays dead: what was sent to
 * its Kafka topic between its death and the others noticing is read by its
 * heir (the survivor that inherits its sessions), which hands it to those
 * sessions. Real processes: node B (the other runtime) is killed with SIGKILL
 * while node A publishes into B's topic; B never comes back.
 *
 * - QoS 1 to B's persistent subscriber: every message reaches it on node A
 *   (its publisher got 0x80: B never answered; the heir delivers them anyway,
 *   at least once).
 * - QoS 2: never twice (the heir does not deliver them: B may have stored them
 *   already, and their publisher was refused and may send them again).
 * - A subscriber that was always on node A gets each message once (the heir
 *   gives what it reads only to the sessions it inherited).
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { untilRouted } from "./helpers/cluster.ts";
import { kafkaClusterSkip, untilLogged, useKafkaCluster } from "./helpers/kafka_cluster.ts";
import { sleep, subscribe, uid, withTimeout } from "./helpers/mqttjs.ts";

const skip = kafkaClusterSkip();
const { env, onA, onB } = useKafkaCluster(skip, { heartbeatMs: 300, nodeTimeoutMs: 2_500 });

describe("cluster over Kafka: the heir of a dead node reads its topic", { skip }, () => {
  test("what was sent to a node killed for good reaches its sessions on the heir", {
    timeout: 180_000,
  }, async () => {
    const t = `heir/${uid()}`;
    const id = `gone-${uid()}`;
    const sub = await onB.connect({ clientId: id, clean: false });
    await subscribe(sub.client, `${t}/#`, { qos: 2 });
    // Always on node A: gets everything straight from the publisher's node.
    const local = await onA.connect({ clientId: `here-${uid()}`, clean: false });
    await subscribe(local.client, `${t}/#`, { qos: 2 });
    const pub = await onA.connect({ clientId: `pub-${uid()}`, protocolVersion: 5 });
    await untilRouted(pub.client, sub.inbox, `${t}/probe`, 40_000);
    await withTimeout(sub.client.endAsync(), "the subscriber disconnects");
    await sleep(500); // its session is stored in Redis
    await env.b!.proc.kill("SIGKILL");
    // Node B's liveness has not expired: node A sends into B's Kafka topic.
    const N = 50;
    const sent = [];
    for (let i = 0; i < N; i++) {
      for (const qos of [1, 2] as const) {
        sent.push(
          pub.client.publishAsync(`${t}/q${qos}`, `m${i}`, { qos }).then(() => true, () => false),
        );
      }
    }
    const acked = (await Promise.all(sent)).filter((ok) => ok).length;
    console.log(`heir: ${acked}/${2 * N} PUBACK/PUBREC succeeded (node B never answered)`);
    const a = env.a!.proc;
    assert.ok(await untilLogged(env.a!, "took over 1 sessions of node 002", 60_000), a.output);
    // (Before the heir read the topic there was no such line; the assertions below say why.)
    await untilLogged(env.a!, "of node 002's Kafka topic", 60_000);
    console.log(a.output.split("\n").filter((l) => l.includes("Kafka topic")).join("\n"));
    const back = await onA.connect({ clientId: id, clean: false });
    assert.equal(back.connack.sessionPresent, true, "node A inherited the session");
    const got = await back.inbox.until(
      (ms) => ms.filter((m) => m.topic === `${t}/q1`).length >= N,
      `${N} QoS 1 messages sent to node B after it died`,
      60_000,
    ).catch((e) => {
      throw new Error(`${e.message}\nnode A:\n${a.output.slice(-3_000)}`);
    });
    await sleep(1_000); // a second copy would come now
    const q1 = got.filter((m) => m.topic === `${t}/q1`).map((m) => m.payload);
    assert.deepEqual(q1, [...Array(N).keys()].map((i) => `m${i}`), "QoS 1: all, in order");
    const q2 = got.filter((m) => m.topic === `${t}/q2`).map((m) => m.payload);
    assert.equal(new Set(q2).size, q2.length, `QoS 2 never twice: ${q2.join(" ")}`);
    // The subscriber that was on node A all along: each message exactly once.
    await local.inbox.until(
      (ms) => ms.filter((m) => m.topic !== `${t}/probe`).length >= 2 * N,
      "every message on node A",
      30_000,
    );
    await sleep(1_000);
    for (const qos of [1, 2]) {
      const seen = local.inbox.on(`${t}/q${qos}`).map((m) => m.payload);
      assert.deepEqual(seen, [...Array(N).keys()].map((i) => `m${i}`), `node A's own, QoS ${qos}`);
    }
  });
});
