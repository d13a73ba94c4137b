/**
 * `cluster.type: kafka`, QoS 2 never twice when the copies of a message reach
 * two runs of the receiving node: node B (the other runtime), which holds a
 * persistent subscriber's session, is down when node A forwards a 3.1.1
 * publisher's QoS 2 message. B's next run reads and stores that first copy,
 * too late for A's wait (A closes the publisher: 3.1.1 cannot refuse), and is
 * killed; the publisher then sends the message again (same packet id), which
 * the run after reads. The subscriber must get it once.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { untilRouted } from "./helpers/cluster.ts";
import { kafkaClusterSkip, useKafkaCluster } from "./helpers/kafka_cluster.ts";
import { sleep, subscribe, uid, withTimeout } from "./helpers/mqttjs.ts";

const skip = kafkaClusterSkip();
// Long enough that node B, killed and started again, is back before A calls it dead.
const { env, onA, onB } = useKafkaCluster(skip, { heartbeatMs: 500, nodeTimeoutMs: 6_000 });

async function until(cond: () => boolean, what: string, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out: ${what}`);
    await sleep(100);
  }
}

const count = (text: string, part: string) => text.split(part).length - 1;

describe("cluster over Kafka: QoS 2 copies read by two runs of a node", { skip }, () => {
  test("the resend read by the next run is not delivered again", {
    timeout: 240_000,
  }, async () => {
    const t = `runs/${uid()}`;
    const id = `s3-${uid()}`;
    const sub = await onB.connect({ clientId: id, clean: false });
    await subscribe(sub.client, `${t}/#`, { qos: 2 });
    // 3.1.1, persistent; reconnected by hand (it then sends the unacknowledged message again).
    const pub = await onA.connect({ clientId: `p-${uid()}`, clean: false, reconnectPeriod: 0 });
    await untilRouted(pub.client, sub.inbox, `${t}/probe`, 40_000);
    await withTimeout(sub.client.endAsync(), "the subscriber disconnects");
    await sleep(500); // its session is stored in Redis
    const b = env.b!.proc;
    await b.kill("SIGKILL");
    const done = pub.client.publishAsync(`${t}/x`, "once", { qos: 2 }).then(
      () => true,
      () => false,
    );
    const joined = "reading from Kafka (group mqttx.cluster.node.002 joined)";
    const before = count(b.output, joined);
    await b.start(60_000);
    // A gives up on the first copy (node-timeout) before B's next run reads it.
    await until(
      () => /was not kept/.test(env.a!.proc.output),
      "node A closes the publisher",
      30_000,
    );
    await until(() => count(b.output, joined) > before, "B's next run reads its topic", 60_000);
    await sleep(3_000); // it has read the first copy and stored it for the subscriber
    await b.kill("SIGKILL");
    const again = count(b.output, joined);
    await b.start(60_000);
    // The run after reads again (its route back on node A), so the resend is answered in time.
    await until(() => count(b.output, joined) > again, "B's third run reads its topic", 60_000);
    // The same stores: without them MQTT.js forgets the unacknowledged message.
    const { incomingStore, outgoingStore } = pub.client;
    pub.client.reconnect({ incomingStore, outgoingStore });
    const ok = await withTimeout(done, "PUBCOMP after the resend", 60_000).catch((e) => {
      throw new Error(`${e.message}\nnode A:\n${env.a!.proc.output.slice(-2_000)}`);
    });
    assert.equal(ok, true);
    const back = await onB.connect({ clientId: id, clean: false });
    assert.equal(back.connack.sessionPresent, true, "node B restored the session");
    await back.inbox.until((ms) => ms.some((m) => m.topic === `${t}/x`), "the message", 30_000);
    await sleep(3_000); // a second copy would come now
    const got = back.inbox.on(`${t}/x`).map((m) => m.payload);
    assert.deepEqual(got, ["once"], `exactly once\nnode B:\n${b.output.slice(-3_000)}`);
  });
});
