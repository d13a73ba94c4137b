/**
 * The cluster bus alone, Redis pub/sub against Kafka, in one process: node
 * "a" sends N publish messages (256 B, QoS 1) to node "b", which counts them.
 * Reports CPU microseconds per message of this process (both buses: encode,
 * send, receive, decode) and of the backend process (redis-server, or
 * librdkafka's mock cluster), A/B in the same minute: on a shared machine the
 * CPU per message is the figure that means something, not msg/s.
 *
 *   deno run -A bench/cluster_bus.ts            (N=50000 ROUNDS=2, ONLY=redis|kafka)
 */
import process from "node:process";
import { RedisBus } from "../src/cluster/redis.ts";
import { KafkaBus } from "../src/cluster/kafka.ts";
import { Recorder } from "../src/cluster/contract.ts";
import type { ClusterBus } from "../src/cluster/types.ts";
import { RedisServer } from "../tests/helpers/redis_server.ts";
import { kafkaAvailable, startMockKafka } from "../tests/helpers/kafka_mock.ts";

const N = Number(Deno.env.get("N") ?? 50_000);
const ROUNDS = Number(Deno.env.get("ROUNDS") ?? 2);
if (!kafkaAvailable()) throw new Error("needs gcc, librdkafka-dev and kcat");

const redis = await RedisServer.start();
const kafka = await startMockKafka([]);
/** The pid of our child process whose command line matches `pattern` (the backends). */
async function childPid(pattern: string): Promise<number> {
  const out = await new Deno.Command("pgrep", { args: ["-P", String(Deno.pid), "-f", pattern] })
    .output();
  const pid = Number(new TextDecoder().decode(out.stdout).trim().split("\n")[0]);
  if (!pid) throw new Error(`no child process ${pattern}`);
  return pid;
}
const mockPid = await childPid("mock_cluster");
const redisPid = await childPid("redis-server");

function procCpu(pid: number): number {
  const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(f[11]) + Number(f[12])) * 10_000; // µs
}
const selfCpu = () => {
  const u = process.cpuUsage();
  return u.user + u.system;
};

let run = 0;
async function measure(kind: "redis" | "kafka"): Promise<string> {
  const p = `bench${++run}`;
  const make = (id: string): ClusterBus =>
    kind === "redis"
      ? new RedisBus({
        url: redis.url,
        nodeId: id,
        heartbeatInterval: 1000,
        nodeTimeout: 5000,
        prefix: `${p}:`,
      })
      : new KafkaBus({
        url: redis.url,
        nodeId: id,
        heartbeatInterval: 1000,
        nodeTimeout: 5000,
        prefix: `${p}:`,
        kafka: { brokers: kafka.bootstrap.split(","), clientId: id },
        topicPrefix: `${p}.`,
      });
  const a = make("a"), b = make("b");
  const rec = new Recorder();
  await a.join(new Recorder());
  await b.join(rec);
  // b reads once its Kafka group has joined: wait for a first message.
  while (rec.messages.length === 0) {
    a.send("b", { kind: "retained", topic: "warm" });
    await new Promise((r) => setTimeout(r, 200));
  }
  await new Promise((r) => setTimeout(r, 500));
  const start = rec.messages.length;
  const payload = new Uint8Array(256);
  const backendPid = kind === "redis" ? redisPid : mockPid;
  const [c0, s0, t0] = [selfCpu(), procCpu(backendPid), performance.now()];
  for (let i = 0; i < N; i++) {
    a.send("b", {
      kind: "publish",
      message: { topic: "bench/t", payload, qos: 1, retain: false },
      ack: i,
    });
    // At most 5000 unread: the mock cluster keeps only ~5 MB per partition (older records
    // are deleted, as retention would), so a reader far behind would lose records.
    while (i % 1000 === 999 && rec.messages.length - start < i - 5000) {
      await new Promise((r) => setTimeout(r, 1));
    }
    if (i % 1000 === 999) await new Promise((r) => setTimeout(r, 0)); // let I/O run
  }
  const deadline = Date.now() + 60_000;
  while (rec.messages.length - start < N) {
    if (Date.now() > deadline) {
      const k = a as unknown as { sent?: number; dropped?: number };
      throw new Error(
        `${kind}: ${
          rec.messages.length - start
        } of ${N} arrived (sent ${k.sent}, dropped ${k.dropped})`,
      );
    }
    await new Promise((r) => setTimeout(r, 5));
  }
  const [c1, s1, t1] = [selfCpu(), procCpu(backendPid), performance.now()];
  await a.leave();
  await b.leave();
  return `${kind}: ${((c1 - c0) / N).toFixed(1)} µs CPU/msg in the nodes, ${
    ((s1 - s0) / N).toFixed(1)
  } µs in the backend, ${Math.round(N / ((t1 - t0) / 1000))} msg/s wall`;
}

try {
  for (let r = 0; r < ROUNDS; r++) {
    for (
      const kind of (Deno.env.get("ONLY") ? [Deno.env.get("ONLY")] : ["redis", "kafka"]) as (
        | "redis"
        | "kafka"
      )[]
    ) console.log(await measure(kind));
  }
} finally {
  await kafka.stop();
  await redis.dispose();
}
console.log(`load average (1 min): ${Deno.readTextFileSync("/proc/loadavg").split(" ")[0]}`);
process.exit(0);
