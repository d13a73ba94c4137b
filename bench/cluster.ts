/**
 * The cost of the cluster, from one run on this 2-core machine (brokers and
 * Redis pinned to CPU 1, clients to CPU 0: this measures what clustering
 * costs, not how it scales).
 *
 * 1. S4 (mqtt-loadgen: 50 → 50 pairs, 256 B, QoS 1, 10 s) on one node on the
 *    Redis store, without and with `cluster.enable` (no peers): target ≥ 0.9×.
 * 2. Cross-node S4 with an MQTT.js client process (mqtt-loadgen has one port):
 *    publishers on node A, subscribers on node B, against the same harness with
 *    every client on node A; flat out (target ≥ 0.5×) and at 200 msg/s per
 *    pair (p99 latency, target ≤ 3×).
 *
 * On a shared machine wall-clock rates are noise: each run also reports the
 * messages delivered per CPU-second of the brokers and Redis together, and
 * Redis's own CPU per delivered message (where one Redis becomes the limit).
 *
 *   deno run -A bench/cluster.ts        (make bench-cluster; CLUSTER_PORT_BASE=n: ports n..n+2)
 */
import {
  BROKERS,
  BUILD,
  buildLoadgen,
  cpuTicks,
  firstConnack,
  ROOT,
  sleep,
  spawnPinned,
  stop,
} from "./brokers.ts";

const env = (k: string) => Deno.env.get(k)?.trim() || undefined;
const NAME = env("BROKER") ?? "mqttx-bun";
// CLUSTER_PORT_BASE: another run (another worktree) may hold the default ports.
const BASE = Number(env("CLUSTER_PORT_BASE") ?? 18961);
const REDIS_PORT = BASE, PORT_A = BASE + 1, PORT_B = BASE + 2;
const S4 = "--pub 50 --sub 50 --topic bench/%i --sub-topic bench/%i --qos 1 --size 256 " +
  "--duration 10 --timeout 60";
await Deno.mkdir(BUILD, { recursive: true });
const dir = await Deno.makeTempDir({ dir: BUILD, prefix: "cluster-" });

function yaml(id: string, port: number, cluster: boolean): string {
  return `mqttx:\n  broker-id: "${id}"\n  host: 127.0.0.1\n  enable-test-mode: false\n` +
    `  socket:\n    port: ${port}\n  redis:\n    url: redis://127.0.0.1:${REDIS_PORT}\n` +
    `  cluster:\n    enable: ${cluster}\n`;
}

async function node(id: string, port: number, cluster: boolean): Promise<Deno.ChildProcess> {
  const conf = `${dir}/${id}-${port}-${cluster}.yml`;
  await Deno.writeTextFile(conf, yaml(id, port, cluster));
  const cmd = await BROKERS.find((b) => b.name === NAME)!.command(port);
  const child = spawnPinned(
    1,
    [...cmd.slice(0, cmd.indexOf("--config")), "--config", conf],
    `${dir}/${id}.log`,
  );
  await firstConnack(port, performance.now(), () => false);
  return child;
}

/** The CPU seconds (user + system) the processes used while `f` ran, with `f`'s result. */
async function cpuDuring<T>(pids: number[], f: () => Promise<T>): Promise<[T, number[]]> {
  const ticks = () => Promise.all(pids.map(async (p) => (await cpuTicks(p)).broker));
  const before = await ticks();
  const r = await f();
  const after = await ticks();
  return [r, after.map((t, i) => (t - before[i]) / 100)]; // USER_HZ is 100 on Linux
}

/** "N msg per CPU-second (brokers + Redis), Redis X µs/msg". */
function perCpu(delivered: number, brokers: number[], redis: number): string {
  const all = brokers.reduce((a, b) => a + b, 0) + redis;
  return `${Math.round(delivered / all)} msg per CPU-s (brokers ${
    brokers.map((b) => b.toFixed(1)).join("+")
  } s, Redis ${redis.toFixed(1)} s: ${(redis / delivered * 1e6).toFixed(1)} µs/msg)`;
}

let redisPid = 0;
async function withRedis<T>(f: () => Promise<T>): Promise<T> {
  const redis = spawnPinned(1, [
    "redis-server",
    ...["--port", `${REDIS_PORT}`, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
  ], `${dir}/redis.log`);
  redisPid = redis.pid;
  await sleep(300);
  try {
    return await f();
  } finally {
    await stop(redis);
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
  await withRedis(async () => {
    const broker = await node("001", PORT_A, cluster);
    try {
      const [out, [cpuBroker, cpuRedis]] = await cpuDuring(
        [broker.pid, redisPid],
        () =>
          spawnPinned(0, [
            loadgen,
            ...S4.split(" "),
            "--port",
            `${PORT_A}`,
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
      await stop(broker);
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
await withRedis(async () => {
  const a = await node("001", PORT_A, true);
  const b = await node("002", PORT_B, true);
  try {
    await sleep(1000);
    const pids = [a.pid, b.pid, redisPid];
    for (const rate of [0, 200]) {
      const [one, cpuOne] = await cpuDuring(pids, () => harness(PORT_A, PORT_A, rate));
      const [cross, cpuCross] = await cpuDuring(pids, () => harness(PORT_A, PORT_B, rate));
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
    await stop(a);
    await stop(b);
  }
});
const load = (await Deno.readTextFile("/proc/loadavg")).split(" ")[0];
say(`load average (1 min) at the end: ${load}`);
await Deno.remove(dir, { recursive: true });
const outDir = env("BENCH_OUT") ?? `${ROOT}/bench/results`;
await Deno.mkdir(outDir, { recursive: true });
const file = `${outDir}/${new Date().toISOString().slice(0, 10)}-cluster.md`;
await Deno.writeTextFile(
  file,
  `# Cluster (bench/cluster.ts, ${NAME})\n\n${lines.map((l) => `- ${l}`).join("\n")}\n`,
);
console.log(`written: ${file}`);
