/**
 * The cluster against one node, driven by the project's load generator (bench/loadgen, which
 * puts publishers on `--port` and subscribers on `--sub-port`): `make bench-cluster`.
 *
 * Placement on this 2-core machine: the mqttx nodes and Redis share CPU 1, the load generator
 * has CPU 0 (as bench/run.ts pins broker and generator). So the cluster's cost is measured on
 * the same single CPU a lone node gets: not how a cluster scales.
 *
 * Setups, each with its own redis-server on a free port:
 *   plain    one node, Redis store, cluster.enable false
 *   alone    one node, cluster.enable true, no peers
 *   pair     nodes A and B (cluster.enable true): each scenario on A only, and split over A+B
 * Scenarios (bench/run.ts's arguments): S4 (50 → 50 pairs, QoS 1, 256 B, 10 s flat out),
 * S4-rate200 (p99 latency), S1-qos1 (1000 publishers × 100 × 1 KiB). "cross" puts S4's
 * publishers on A and subscribers on B; S1 "spread" puts publisher i on A or B by parity.
 *
 *   RUNS=2 BROKER=mqttx-bun deno run -A bench/cluster_loadgen.ts   (BUS=kafka: the Kafka bus)
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
const BROKER = env("BROKER") ?? "mqttx-bun";
const RUNS = Number(env("RUNS") ?? 1);
const NODE_CPU = 1, LOADGEN_CPU = 0;
// S1 as bench/run.ts, but 1,000 messages per publisher: at 100 a run lasts ~0.2 s, too short
// for CPU time counted in 10 ms ticks.
const S1 = "--pub 1000 --size 1024 --count 1000 --qos 1 --timeout 120";
const S4 = "--pub 50 --sub 50 --topic bench/%i --sub-topic bench/%i --qos 1 --size 256 " +
  "--duration 10 --timeout 60";

interface Sample {
  rate: number; // S1: acknowledged msg/s; S4: delivered msg/s in the window
  p99: number; // ms
  perCpu: number; // messages per CPU-second of the nodes and Redis
  redisUsPerMsg: number;
  redisCmdsPerMsg: number;
  other: number; // CPU-s per s the rest of the machine used meanwhile (other sessions)
  bad: string; // loss, duplicates, errors
}
const samples = new Map<string, Sample[]>();
const loadavgs: number[] = [];

const loadgen = await buildLoadgen();
const dir = await scratch("cluster-lg-");
const kafka = await kafkaBusFromEnv(dir, NODE_CPU); // BUS=kafka: the Kafka cluster bus

/** Commands Redis has run so far (INFO commandstats, summed). */
async function redisCalls(port: number): Promise<number> {
  const out = await new Deno.Command("redis-cli", {
    args: ["-p", `${port}`, "info", "commandstats"],
    stdout: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout);
  return [...text.matchAll(/calls=(\d+)/g)].reduce((a, m) => a + Number(m[1]), 0);
}

/** One load generator run; `key` names it in the tables. */
async function run(key: string, args: string, ports: string[], pids: number[], redis: Proc) {
  const cmd = [loadgen, ...args.split(" "), "--port", ports[0], "--quiet"];
  if (ports[1]) cmd.push("--sub-port", ports[1]);
  const calls0 = await redisCalls(redis.port);
  const use = await cpuDuring([...pids, redis.pid], () => spawnPinned(LOADGEN_CPU, cmd).output());
  const calls = await redisCalls(redis.port) - calls0 - 1; // less our own INFO
  const text = new TextDecoder().decode(use.result.stdout);
  const line = text.split("\n").find((l) => l.startsWith("RESULT "));
  if (!line) throw new Error(`${key}: no RESULT\n${text}`);
  const r = JSON.parse(line.slice(7));
  const msgs = args.includes("--count") ? r.pub_acked : r.recv;
  const ours = use.cpu.reduce((a, b) => a + b, 0);
  const lgCpu = r.lg_cpu_pct / 100 * use.wall; // over its active phase: an upper bound here
  const s: Sample = {
    rate: args.includes("--count") ? r.pub_rate : r.recv_window_rate,
    p99: r.lat_us.p99 / 1000,
    perCpu: msgs / ours,
    redisUsPerMsg: use.cpu[use.cpu.length - 1] / msgs * 1e6,
    redisCmdsPerMsg: calls / msgs,
    other: Math.max(0, use.machine - ours - lgCpu) / use.wall,
    bad: [
      r.lost ? `lost ${r.lost}` : "",
      r.dup ? `dup ${r.dup}` : "",
      r.conn_fail ? `conn_fail ${r.conn_fail}` : "",
      r.dropped ? `dropped ${r.dropped}` : "",
      r.timeout ? "timeout" : "",
    ].filter(Boolean).join(", "),
  };
  samples.set(key, [...(samples.get(key) ?? []), s]);
  console.log(
    `${key}: ${Math.round(s.rate)} msg/s, p99 ${s.p99.toFixed(2)} ms, ${
      Math.round(s.perCpu)
    } msg/CPU-s (CPU ${use.cpu.map((c) => c.toFixed(1)).join("+")} s), other load ${
      s.other.toFixed(2)
    } CPU${s.bad ? `; ${s.bad}` : ""}`,
  );
  loadavgs.push(Number((await Deno.readTextFile("/proc/loadavg")).split(" ")[0]));
}

async function single(cluster: boolean) {
  const redis = await startRedis(dir, NODE_CPU);
  const a = await startNode(dir, NODE_CPU, redis.port, "001", cluster, BROKER, kafka);
  const name = cluster ? "alone" : "plain";
  try {
    const p = [`${a.port}`];
    await run(`S4 ${name}`, S4, p, [a.pid], redis);
    await run(`S1 ${name}`, S1, p, [a.pid], redis);
  } finally {
    await stopAll([a, redis]);
  }
}

async function pair() {
  const redis = await startRedis(dir, NODE_CPU);
  const a = await startNode(dir, NODE_CPU, redis.port, "001", true, BROKER, kafka);
  const b = await startNode(dir, NODE_CPU, redis.port, "002", true, BROKER, kafka);
  try {
    await new Promise((r) => setTimeout(r, 1000)); // the nodes see each other
    const pids = [a.pid, b.pid];
    const [A, B] = [`${a.port}`, `${b.port}`];
    await run("S4 one node", S4, [A], pids, redis);
    await run("S4 cross-node", S4, [A, B], pids, redis);
    await run("S4-rate200 one node", `${S4} --rate 200`, [A], pids, redis);
    await run("S4-rate200 cross-node", `${S4} --rate 200`, [A, B], pids, redis);
    await run("S1 one node", S1, [A], pids, redis);
    await run("S1 spread", S1, [`${A},${B}`], pids, redis);
  } finally {
    await stopAll([a, b, redis]);
  }
}

for (let i = 0; i < RUNS; i++) {
  await single(false);
  await single(true);
  await pair();
}
await Deno.remove(dir, { recursive: true });

// ------------------------------------------------------------ report

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const med = (key: string, f: (s: Sample) => number) => median(samples.get(key)!.map(f));
const span = (key: string, f: (s: Sample) => number, d = 0) => {
  const xs = samples.get(key)!.map(f);
  const m = median(xs).toFixed(d);
  return xs.length > 1 ? `${m} [${Math.min(...xs).toFixed(d)}–${Math.max(...xs).toFixed(d)}]` : m;
};
const rows = [...samples.keys()].map((k) =>
  `| ${k} | ${span(k, (s) => s.rate)} | ${k.startsWith("S1") ? "—" : span(k, (s) => s.p99, 2)} | ${
    span(k, (s) => s.perCpu)
  } | ${span(k, (s) => s.redisUsPerMsg, 1)} | ${span(k, (s) => s.redisCmdsPerMsg, 2)} | ${
    span(k, (s) => s.other, 2)
  } | ${samples.get(k)!.map((s) => s.bad).filter(Boolean).join("; ") || "—"} |`
);
const ratio = (a: string, b: string, f: (s: Sample) => number) =>
  (med(a, f) / med(b, f)).toFixed(2);
const rate = (s: Sample) => s.rate, perCpu = (s: Sample) => s.perCpu, p99 = (s: Sample) => s.p99;
const out = [
  `# Cluster with the load generator (bench/cluster_loadgen.ts, ${BROKER}, bus ${
    kafka ? "kafka" : "redis"
  }, ${RUNS} run(s))`,
  "",
  `${
    new Date().toISOString()
  }. Nodes and Redis on CPU ${NODE_CPU}, load generator on CPU ${LOADGEN_CPU}; ` +
  `1-min load average after each run: ${Math.min(...loadavgs)}–${Math.max(...loadavgs)}.`,
  "",
  "| run | msg/s | p99 ms | msg per CPU-s (nodes + Redis) | Redis µs/msg | Redis commands/msg | other load (CPUs) | problems |",
  "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
  ...rows,
  "",
  "| ratio (medians) | msg/s | per CPU-s | target |",
  "| --- | ---: | ---: | --- |",
  `| S4 alone (cluster.enable, no peers) ÷ plain | ${ratio("S4 alone", "S4 plain", rate)} | ${
    ratio("S4 alone", "S4 plain", perCpu)
  } | ≥ 0.9 |`,
  `| S1 alone ÷ plain | ${ratio("S1 alone", "S1 plain", rate)} | ${
    ratio("S1 alone", "S1 plain", perCpu)
  } | — |`,
  `| S4 cross-node ÷ one node | ${ratio("S4 cross-node", "S4 one node", rate)} | ${
    ratio("S4 cross-node", "S4 one node", perCpu)
  } | ≥ 0.5 |`,
  `| S4 cross-node ÷ plain | ${ratio("S4 cross-node", "S4 plain", rate)} | ${
    ratio("S4 cross-node", "S4 plain", perCpu)
  } | — |`,
  `| S1 spread over A+B ÷ one node | ${ratio("S1 spread", "S1 one node", rate)} | ${
    ratio("S1 spread", "S1 one node", perCpu)
  } | — |`,
  `| S4-rate200 p99 cross-node ÷ one node | ${
    ratio("S4-rate200 cross-node", "S4-rate200 one node", p99)
  } (p99) | | ≤ 3 |`,
  "",
];
await stopKafka(kafka);
const outDir = env("BENCH_OUT") ?? `${ROOT}/bench/results`;
await Deno.mkdir(outDir, { recursive: true });
const file = `${outDir}/${new Date().toISOString().slice(0, 10)}-cluster-loadgen${
  kafka ? "-kafka" : ""
}.md`;
await Deno.writeTextFile(file, out.join("\n"));
// formatted as `make check` wants it (the tables' columns aligned)
await new Deno.Command(Deno.execPath(), { args: ["fmt", "-q", file], cwd: ROOT }).output();
console.log(out.join("\n"));
console.log(`written: ${file}`);
