/**
 * A broker-id back before the others handed on its previous run's leave (kafka.ts holds a
 * leave until the receiver has read the node's last frames, a node timeout at most): the
 * held "gone" of the old run must not remove the new one. Buses on a real redis-server and
 * librdkafka's mock cluster; the receiver holds its reading (not ready) so the leave waits.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { Recorder } from "../src/cluster/contract.ts";
import { KafkaBus } from "../src/cluster/kafka.ts";
import type { NodeId } from "../src/cluster/types.ts";
import { kafkaAvailable, type MockKafka, startMockKafka } from "./helpers/kafka_mock.ts";
import { mustRun } from "./helpers/harness.ts";
import { RedisServer, redisServerAvailable } from "./helpers/redis_server.ts";

const skip = !(redisServerAvailable() && kafkaAvailable()) && !mustRun()
  ? "needs redis-server, gcc, librdkafka-dev and kcat"
  : false;
let server: RedisServer | undefined;
let kafka: MockKafka | undefined;
const buses: KafkaBus[] = [];
const NODE_TIMEOUT = 800;

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

function bus(id: NodeId, holdUntilReady = false): KafkaBus {
  const b = new KafkaBus({
    url: server!.url,
    nodeId: id,
    heartbeatInterval: 100,
    nodeTimeout: NODE_TIMEOUT,
    prefix: "restart:cluster:",
    kafka: { brokers: kafka!.bootstrap.split(","), clientId: `restart-${id}` },
    topicPrefix: "restart.cluster.",
    holdUntilReady,
  });
  buses.push(b);
  return b;
}

async function until(cond: () => boolean, what: string, ms = 30_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out: ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

test("a node's held leave does not remove its next run under the same broker-id", {
  skip,
  timeout: 60_000,
}, async () => {
  // b does not read Kafka yet: a leave naming a frame sent to b is held (a node timeout).
  const b = bus("b", true);
  const events: string[] = [];
  const rec = new Recorder();
  rec.nodeUp = (n) => void events.push(`up ${n.id}`);
  rec.nodeDown = (n) => void events.push(`down ${n}`);
  rec.route = (n, f, p) => void events.push(`route ${n} ${f} ${p}`);
  await b.join(rec);
  const a = bus("a");
  await a.join(new Recorder());
  await until(() => events.includes("up a"), "b hears of a");
  a.route("old/+", true);
  a.send("b", { kind: "ack", ids: [1], ok: true });
  await a.leave();

  // Back at once under the same id (a restart): a route of the new run reaches b.
  const a2 = bus("a");
  await a2.join(new Recorder());
  a2.route("new/+", true);
  await until(() => events.includes("route a new/+ true"), "b hears of the new run's route");
  const heardNew = events.length;
  await new Promise((r) => setTimeout(r, NODE_TIMEOUT + 500)); // the held leave runs out

  assert.deepEqual(events.slice(heardNew).filter((e) => e.startsWith("down")), [], events.join());
  assert.ok(b.nodes().some((n) => n.id === "a"), "b still counts a as a live node");
  await a2.leave();
  await b.leave();
});
