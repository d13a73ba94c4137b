/**
 * The scenario of tests/cluster_kafka_heir_return_test.ts and cluster_kafka_heir_stall_test.ts
 * (each on a cluster of its own: the nodes' logs, which it waits on, must be fresh): node B
 * killed while node A publishes QoS 1 for B's offline persistent subscriber; A, B's heir,
 * inherits the session; B's broker-id starts again meanwhile. Whichever node ends up with the
 * session delivers every message sent while B was dead, and a client of the returning run gets
 * every message sent to it.
 */
import assert from "node:assert/strict";
import { type KafkaClusterEnv, offlineOnKilledB, untilLogged } from "./kafka_cluster.ts";
import { type Clients, sleep, subscribe, uid, withTimeout } from "./mqttjs.ts";

/** `stallHeirMs`: node A (the heir) frozen that long once B's new run waits for it. */
export async function returnWhileHeirDrains(
  cluster: { env: KafkaClusterEnv; onA: Clients; onB: Clients },
  stallHeirMs: number,
): Promise<void> {
  const { env, onA, onB } = cluster;
  const t = `ret/${uid()}`;
  const id = `back-${uid()}`;
  const pub = await offlineOnKilledB({ env, onA, onB }, t, id, 1);
  const N = 50;
  const sent = [];
  for (let i = 0; i < N; i++) {
    sent.push(pub.client.publishAsync(`${t}/q1`, `m${i}`, { qos: 1 }).then(() => 1, () => 0));
  }
  await Promise.all(sent);
  const a = env.a!.proc;
  assert.ok(await untilLogged(env.a!, "took over 1 sessions of node 002", 60_000), a.output);
  // The heir now waits for the dead run's Kafka group member to expire, then reads its topic:
  // the broker-id comes back meanwhile.
  const restarted = env.b!.proc.start(90_000);
  if (stallHeirMs > 0) {
    assert.ok(await untilLogged(env.b!, "joining once it is done", 60_000), env.b!.proc.output);
    a.freeze(true);
    await sleep(stallHeirMs);
    a.freeze(false);
  }
  await restarted;
  // A client of the returning run, and QoS 1 messages for it from node A.
  const live = await onB.connect({ clientId: `live-${uid()}` });
  await subscribe(live.client, `${t}/live`, { qos: 1 });
  await sleep(2_000); // its route reaches node A (no probe: the first one through would hide a loss)
  const M = 20;
  const liveSent = [];
  for (let i = 0; i < M; i++) {
    liveSent.push(
      pub.client.publishAsync(`${t}/live`, `l${i}`, { qos: 1 }).then(() => 1, () => 0),
    );
    await sleep(100);
  }
  const liveAcked = (await Promise.all(liveSent)).reduce((x: number, y) => x + y, 0);
  await live.inbox.until(
    (ms) => ms.filter((m) => m.payload.startsWith("l")).length >= M,
    "the returning run's client gets what is sent to it",
    20_000,
  ).catch(() => {});
  const liveGot = live.inbox.on(`${t}/live`).map((m) => m.payload);
  await untilLogged(env.a!, "of node 002's Kafka topic", 90_000);
  await sleep(2_000);
  // The session is on one node: whichever answers `session present` delivers it all.
  let got: string[] = [];
  for (const [name, on] of [["A", onA], ["B", onB]] as [string, Clients][]) {
    const c = await on.connect({ clientId: id, clean: false });
    if (!c.connack.sessionPresent) continue;
    const ms = await c.inbox.until(
      (ms) => ms.filter((m) => m.topic === `${t}/q1`).length >= N,
      `${N} QoS 1 messages on node ${name}`,
      20_000,
    ).catch(() => c.inbox.messages);
    got = ms.filter((m) => m.topic === `${t}/q1`).map((m) => m.payload);
    await withTimeout(c.client.endAsync(), "ends");
    break;
  }
  console.log(
    env.b!.proc.output.split("\n").filter((l) => l.includes("previous run")).join("\n"),
  );
  const logs = `\nnode A:\n${a.output.slice(-2_500)}\nnode B:\n${env.b!.proc.output.slice(-2_500)}`;
  assert.deepEqual(
    [...new Set(got)].sort(),
    [...Array(N).keys()].map((i) => `m${i}`).sort(),
    `every message sent while node B was dead${logs}`,
  );
  assert.deepEqual(
    liveGot,
    [...Array(M).keys()].map((i) => `l${i}`),
    `the returning run's client: ${liveAcked}/${M} acknowledged${logs}`,
  );
}
