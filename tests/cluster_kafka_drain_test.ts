/**
 * KafkaBus.drain (src/cluster/kafka_drain.ts) on its own: a node that crashed
 * left messages unread in its topic; another node's drain reads them all, in
 * order, from the dead node's committed offset, and commits them for the dead
 * node's group, so a later run of that broker-id does not read them again.
 * State in a real redis-server, messages over librdkafka's mock cluster.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { Recorder } from "../src/cluster/contract.ts";
import { KafkaBus } from "../src/cluster/kafka.ts";
import type { BusMessage, NodeId } from "../src/cluster/types.ts";
import { kafkaAvailable, type MockKafka, startMockKafka } from "./helpers/kafka_mock.ts";
import { mustRun } from "./helpers/harness.ts";
import { RedisServer, redisServerAvailable } from "./helpers/redis_server.ts";

const skip = !(redisServerAvailable() && kafkaAvailable()) && !mustRun()
  ? "needs redis-server, gcc, librdkafka-dev and kcat"
  : false;
let server: RedisServer | undefined;
let kafka: MockKafka | undefined;
const buses: KafkaBus[] = [];

before(async () => {
  if (skip) return;
  server = await RedisServer.start();
  kafka = await startMockKafka([]);
});

after(async () => {
  for (const b of buses) await b.leave().catch(() => {});
  await kafka?.stop();
  await server?.dispose();
});

function bus(id: NodeId): KafkaBus {
  const b = new KafkaBus({
    url: server!.url,
    nodeId: id,
    heartbeatInterval: 100,
    nodeTimeout: 800,
    prefix: "drain:cluster:",
    kafka: { brokers: kafka!.bootstrap.split(","), clientId: `drain-${id}` },
    topicPrefix: "drain.cluster.",
  });
  buses.push(b);
  return b;
}

async function until(cond: () => boolean, what: string, ms = 60_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out: ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const publish = (i: number): BusMessage => ({
  kind: "publish",
  message: { topic: "t", payload: new TextEncoder().encode(`p${i}`), qos: 1, retain: false },
  ack: i,
});
const payloads = (msgs: { msg: BusMessage }[]) =>
  msgs.flatMap(({ msg }) =>
    msg.kind === "publish" ? [new TextDecoder().decode(msg.message.payload)] : []
  );

test("a dead node's unread messages: drained once, in order, never read again", {
  skip,
  timeout: 120_000,
}, async () => {
  const a = bus("a"), b = bus("b");
  const recA = new Recorder(), recB = new Recorder();
  await a.join(recA);
  await b.join(recB);
  await until(() => recA.up.includes("b"), "a hears of b");
  // b reads one message, then dies: what comes after waits in its topic.
  a.send("b", publish(0));
  await until(() => payloads(recB.messages).length === 1, "b reads p0");
  await new Promise((r) => setTimeout(r, 1_000)); // kafkajs commits after each batch
  b.abandon();
  for (let i = 1; i <= 20; i++) a.send("b", publish(i));
  await until(() => a.sent >= 21, "a's messages reach Kafka");

  const drained: { from: NodeId; msg: BusMessage }[] = [];
  const r = await a.drain("b", (from, msg) => drained.push({ from, msg }));
  assert.equal(r.complete, true);
  assert.deepEqual(payloads(drained), [...Array(20).keys()].map((i) => `p${i + 1}`));
  assert.ok(drained.every((d) => d.from === "a"));

  // A later run of b goes on after what the drain committed.
  const b2 = bus("b");
  const recB2 = new Recorder();
  await until(() => recA.down.some((d) => d.node === "b"), "a sees b dead");
  // a is b's heir and has read its topic: done (ClusterNode says so after inheriting), so the
  // next run of b joins at once.
  assert.ok(recA.down.some((d) => d.node === "b" && d.heir));
  a.inherited("b");
  await b2.join(recB2);
  a.send("b", publish(99));
  await until(() => payloads(recB2.messages).includes("p99"), "the new run reads p99", 60_000);
  assert.deepEqual(payloads(recB2.messages), ["p99"], "nothing drained is read again");
});
