/**
 * `cluster.type: kafka`, QoS 2 never twice across a restart: node B (the
 * other runtime), which holds a persistent subscriber's session, is killed
 * with SIGKILL and started again. Node A forwards a 3.1.1 publisher's QoS 2
 * messages into B's Kafka topic; B does not answer in time, so A closes the
 * publisher (3.1.1 cannot refuse a message) and the publisher, reconnecting,
 * sends them again (DUP) into B's topic. B, back, reads both copies of each:
 * the subscriber must get each message exactly once.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { untilRouted } from "./helpers/cluster.ts";
import { kafkaClusterSkip, useKafkaCluster } from "./helpers/kafka_cluster.ts";
import { sleep, subscribe, uid, withTimeout } from "./helpers/mqttjs.ts";

const skip = kafkaClusterSkip();
// Long enough that node B, killed and started again, is back before A calls it dead.
const { env, onA, onB } = useKafkaCluster(skip, { heartbeatMs: 500, nodeTimeoutMs: 6_000 });

describe("cluster over Kafka: QoS 2 resent after a timed-out acknowledgement", { skip }, () => {
  test("a restarted node that reads both copies delivers one", {
    timeout: 180_000,
  }, async () => {
    const t = `twice/${uid()}`;
    const id = `s2-${uid()}`;
    const sub = await onB.connect({ clientId: id, clean: false });
    await subscribe(sub.client, `${t}/#`, { qos: 2 });
    // 3.1.1, persistent, reconnecting: resends what was not acknowledged, with DUP.
    const pub = await onA.connect({
      clientId: `p-${uid()}`,
      clean: false,
      reconnectPeriod: 500,
    });
    await untilRouted(pub.client, sub.inbox, `${t}/probe`, 40_000);
    await withTimeout(sub.client.endAsync(), "the subscriber disconnects");
    await sleep(500); // its session is stored in Redis
    await env.b!.proc.kill("SIGKILL");
    const N = 10;
    const done = [];
    for (let i = 0; i < N; i++) done.push(pub.client.publishAsync(`${t}/x`, `m${i}`, { qos: 2 }));
    await sleep(200);
    await env.b!.proc.start(60_000);
    // Each PUBCOMP comes once a copy was stored on node B (the first run of each failed).
    await withTimeout(Promise.all(done), "every PUBCOMP, after resending", 90_000);
    assert.match(env.a!.proc.output, /was not kept/, "node A closed the publisher at least once");
    const back = await onB.connect({ clientId: id, clean: false });
    assert.equal(back.connack.sessionPresent, true, "node B restored the session");
    await back.inbox.until(
      (ms) => ms.filter((m) => m.topic === `${t}/x`).length >= N,
      `${N}`,
      60_000,
    );
    await sleep(2_000); // a second copy would come now
    const got = back.inbox.on(`${t}/x`).map((m) => m.payload);
    assert.deepEqual(got, [...Array(N).keys()].map((i) => `m${i}`), "each exactly once, in order");
  });
});
