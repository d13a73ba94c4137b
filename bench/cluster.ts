/**
 * The cost of the cluster, from one run on this 2-core machine (brokers and
 * Redis pinned to CPU 1, clients to CPU 0: this measures what clustering
 * costs, not how it scales).
 *
 * 1. S4 (mqtt-loadgen: 50 → 50 pairs, 256 B, QoS 1, 10 s) on one node on the
 *    Redis store, without and with `cluster.enable` (no peers): target ≥ 0.9×.
 * 2. Cross-node S4 with an MQTT.js client process (the older harness; bench/cluster_loadgen.ts
 *    does the same with mqttx-loadgen's --sub-port):
 *    publishers on node A, subscribers on node B, against the same harness with
 *    every client on node A; flat out (target ≥ 0.5×) and at 200 msg/s per
 *    pair (p99 latency, target ≤ 3×).
 *
 * On a shared machine wall-clock rates are noise: each run also reports the
 * messages delivered per CPU-second of the brokers and Redis together, and
 * Redis's own CPU per delivered message (where one Redis becomes the limit).
 *
 * `BUS=kafka` runs the nodes with `cluster.type: kafka` over librdkafka's mock
 * cluster (tests/kafka_mock, built with gcc; its CPU is not counted).
 *
 *   deno run -A bench/cluster.ts   (make bench-cluster runs bench/cluster_loadgen.ts instead)
 *   BUS=kafka deno run -A bench/cluster.ts
 */
import { buildLoadgen, ROOT, spawnPinned } from "./brokers.ts";
import {
  cpuDuring,
  kafkaBusFromEnv,
  type Proc,
  scratch,
  startNode,
  startRedis,
  stopAll,
  stopKafka,
} from "./cluster_nodes.ts";

const env = (k: string) => Deno.env.get(k)?.trim() || undefined;
const NAME = env("BROKER") ?? "mqttx-bun";
const S4 = "--pub 50 --sub 50 --topic bench/%i --sub-topic bench/%i --qos 1 --size 256 " +
  "--duration 10 --timeout 60";
const dir = await scratch("cluster-");
const kafka = await kafkaBusFromEnv(dir, 1);

/** "N msg per CPU-second (brokers + Redis), Redis X µs/msg". */
function perCpu(delivered: number, brokers: number[], redis: number): string {
  const all = brokers.reduce((a, b) => a + b, 0) + redis;
  return `${Math.round(delivered / all)} msg per CPU-s (brokers ${
    brokers.map((b) => b.toFixed(1)).join("+")
  } s, Redis ${redis.toFixed(1)} s: ${(redis / delivered * 1e6).toFixed(1)} µs/msg)`;
}

async function withRedis<T>(f: (redis: Proc) => Promise<T>): Promise<T> {
  const redis = await startRedis(dir, 1);
  try {
    return await f(redis);
  } finally {
    await stopAll([redis]);
  }
}

const loadgen = await buildLoadgen();
const lines: string[] = [];
const say = (l: string) => {
  console.log(l);
  lines.push(l);
};

// 1. One node, cluster off and on.
const single: Record<string, number> = {};
const singleCpu: Record<string, number> = {};
for (const cluster of [false, true]) {
  await withRedis(async (redis) => {
    const broker = await startNode(dir, 1, redis.port, "001", cluster, NAME, kafka);
    try {
      const { result: out, cpu: [cpuBroker, cpuRedis] } = await cpuDuring(
        [broker.pid, redis.pid],
        () =>
          spawnPinned(0, [
            loadgen,
            ...S4.split(" "),
            "--port",
            `${broker.port}`,
            "--quiet",
          ]).output(),
      );
      const text = new TextDecoder().decode(out.stdout);
      const r = JSON.parse(text.split("\n").find((l) => l.startsWith("RESULT "))!.slice(7));
      single[String(cluster)] = r.recv_window_rate;
      singleCpu[String(cluster)] = r.recv / (cpuBroker + cpuRedis);
      say(
        `S4 one node, cluster.enable ${cluster}: ${
          Math.round(r.recv_window_rate)
        } msg/s, lost ${r.lost}; ${perCpu(r.recv, [cpuBroker], cpuRedis)}`,
      );
    } finally {
      await stopAll([broker]);
    }
  });
}
say(
  `ratio cluster.enable (no peers) / without: ${(single.true / single.false).toFixed(2)} ` +
    `(per CPU-s: ${(singleCpu.true / singleCpu.false).toFixed(2)})`,
);

// 2. Cross-node against one node, with the MQTT.js harness (bench/cluster_clients.ts).
async function harness(pubPort: number, subPort: number, rate: number) {
  const cmd = [
    Deno.execPath(),
    "run",
    "-A",
    "bench/cluster_clients.ts",
    `${pubPort}`,
    `${subPort}`,
    `${rate}`,
  ];
  const out = await spawnPinned(0, cmd).output();
  const text = new TextDecoder().decode(out.stdout);
  const line = text.split("\n").find((l) => l.startsWith("RESULT "));
  if (!line) throw new Error(`harness failed: ${text}\n${new TextDecoder().decode(out.stderr)}`);
  return JSON.parse(line.slice(7)) as { rate: number; p99: number; lost: number; received: number };
}
await withRedis(async (redis) => {
  const a = await startNode(dir, 1, redis.port, "001", true, NAME, kafka);
  const b = await startNode(dir, 1, redis.port, "002", true, NAME, kafka);
  try {
    await new Promise((r) => setTimeout(r, 1000));
    const pids = [a.pid, b.pid, redis.pid];
    for (const rate of [0, 200]) {
      const { result: one, cpu: cpuOne } = await cpuDuring(
        pids,
        () => harness(a.port, a.port, rate),
      );
      const { result: cross, cpu: cpuCross } = await cpuDuring(
        pids,
        () => harness(a.port, b.port, rate),
      );
      const what = rate === 0 ? "flat out" : `${rate} msg/s per pair`;
      say(
        `S4 (MQTT.js) ${what}, one node: ${Math.round(one.rate)} msg/s, p99 ${
          one.p99.toFixed(1)
        } ms, lost ${one.lost}; ${perCpu(one.received, cpuOne.slice(0, 2), cpuOne[2])}`,
      );
      say(
        `S4 (MQTT.js) ${what}, cross-node: ${Math.round(cross.rate)} msg/s, p99 ${
          cross.p99.toFixed(1)
        } ms, lost ${cross.lost}; ${perCpu(cross.received, cpuCross.slice(0, 2), cpuCross[2])}`,
      );
      const sum = (c: number[]) => c.reduce((x, y) => x + y, 0);
      const work = (cross.received / sum(cpuCross)) / (one.received / sum(cpuOne));
      if (rate === 0) {
        say(
          `ratio cross-node / one node (delivered): ${(cross.rate / one.rate).toFixed(2)} ` +
            `(per CPU-s: ${work.toFixed(2)})`,
        );
      } else say(`ratio cross-node / one node (p99): ${(cross.p99 / one.p99).toFixed(2)}`);
    }
  } finally {
    await stopAll([a, b]);
  }
});
const load = (await Deno.readTextFile("/proc/loadavg")).split(" ")[0];
say(`load average (1 min) at the end: ${load}`);
await stopKafka(kafka);
await Deno.remove(dir, { recursive: true });
const outDir = env("BENCH_OUT") ?? `${ROOT}/bench/results`;
await Deno.mkdir(outDir, { recursive: true });
const file = `${outDir}/${new Date().toISOString().slice(0, 10)}-cluster${
  kafka ? "-kafka" : ""
}.md`;
await Deno.writeTextFile(
  file,
  `# Cluster (bench/cluster.ts, ${NAME}, bus ${kafka ? "kafka" : "redis"})\n\n${
    lines.map((l) => `- ${l}`).join("\n")
  }\n`,
);
console.log(`written: ${file}`);
