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
 * 3. Cross-node work per CPU second: messages delivered across nodes ÷ the two
 *    nodes' user+sys CPU seconds (from /proc), the one figure that survives a
 *    noisy shared machine. `BUS=kafka` runs the nodes with `cluster.type: kafka`
 *    over librdkafka's mock cluster (tests/kafka_mock, built with gcc);
 *    `CROSS_ONLY=1` skips part 1.
 *
 *   deno run -A bench/cluster.ts        (make bench-cluster)
 *   BUS=kafka CROSS_ONLY=1 PORT_BASE=28961 deno run -A bench/cluster.ts
 */
import {
  BROKERS,
  BUILD,
  buildLoadgen,
  firstConnack,
  ROOT,
  sleep,
  spawnPinned,
  stop,
} from "./brokers.ts";

const env = (k: string) => Deno.env.get(k)?.trim() || undefined;
const NAME = env("BROKER") ?? "mqttx-bun";
const BUS = env("BUS") === "kafka" ? "kafka" : "redis";
let kafkaBootstrap = "";
// PORT_BASE: another run of this bench on the machine uses the defaults.
const BASE = Number(env("PORT_BASE") ?? 18961);
const REDIS_PORT = BASE, PORT_A = BASE + 1, PORT_B = BASE + 2;
const S4 = "--pub 50 --sub 50 --topic bench/%i --sub-topic bench/%i --qos 1 --size 256 " +
  "--duration 10 --timeout 60";
await Deno.mkdir(BUILD, { recursive: true });
const dir = await Deno.makeTempDir({ dir: BUILD, prefix: "cluster-" });

function yaml(id: string, port: number, cluster: boolean): string {
  return `mqttx:\n  broker-id: "${id}"\n  host: 127.0.0.1\n  enable-test-mode: false\n` +
    `  socket:\n    port: ${port}\n  redis:\n    url: redis://127.0.0.1:${REDIS_PORT}\n` +
    `  cluster:\n    enable: ${cluster}\n` +
    (BUS === "kafka" ? `    type: kafka\n    kafka-brokers: [${kafkaBootstrap}]\n` : "");
}

/** user+sys CPU seconds of a process so far (/proc/<pid>/stat, clock ticks of 1/100 s). */
async function cpuSeconds(pid: number): Promise<number> {
  const stat = await Deno.readTextFile(`/proc/${pid}/stat`);
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(f[11]) + Number(f[12])) / 100;
}

/** librdkafka's mock cluster (BUS=kafka), pinned with the brokers; its bootstrap address. */
async function startKafka(): Promise<Deno.ChildProcess> {
  const bin = `${dir}/mock_cluster`;
  const cc = await new Deno.Command("sh", {
    args: [
      "-c",
      `gcc -O1 -o ${bin} tests/kafka_mock/mock_cluster.c $(pkg-config --cflags --libs rdkafka)`,
    ],
    cwd: ROOT,
  }).output();
  if (!cc.success) throw new Error(`mock_cluster: ${new TextDecoder().decode(cc.stderr)}`);
  const child = new Deno.Command("taskset", {
    args: ["-c", "1", bin],
    stdin: "piped",
    stdout: "piped",
  }).spawn();
  const reader = child.stdout.getReader();
  let text = "";
  while (!text.includes("\n")) text += new TextDecoder().decode((await reader.read()).value);
  kafkaBootstrap = text.split("\n")[0].trim();
  reader.releaseLock();
  return child;
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

async function withRedis<T>(f: () => Promise<T>): Promise<T> {
  const redis = spawnPinned(1, [
    "redis-server",
    ...["--port", `${REDIS_PORT}`, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
  ], `${dir}/redis.log`);
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
const kafka = BUS === "kafka" ? await startKafka() : undefined;
// Stopped on any exit, a failed run too (stdin closing ends it as well).
globalThis.addEventListener("unload", () => kafka?.kill("SIGTERM"));
for (const cluster of env("CROSS_ONLY") ? [] : [false, true]) {
  await withRedis(async () => {
    const broker = await node("001", PORT_A, cluster);
    try {
      const out = await spawnPinned(0, [
        loadgen,
        ...S4.split(" "),
        "--port",
        `${PORT_A}`,
        "--quiet",
      ])
        .output();
      const text = new TextDecoder().decode(out.stdout);
      const r = JSON.parse(text.split("\n").find((l) => l.startsWith("RESULT "))!.slice(7));
      single[String(cluster)] = r.recv_window_rate;
      say(
        `S4 one node, cluster.enable ${cluster}: ${
          Math.round(r.recv_window_rate)
        } msg/s, lost ${r.lost}`,
      );
    } finally {
      await stop(broker);
    }
  });
}
if (!env("CROSS_ONLY")) {
  say(`ratio cluster.enable (no peers) / without: ${(single.true / single.false).toFixed(2)}`);
}

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
    for (const rate of [0, 200]) {
      const one = await harness(PORT_A, PORT_A, rate);
      const cpu0 = (await cpuSeconds(a.pid)) + (await cpuSeconds(b.pid));
      const cross = await harness(PORT_A, PORT_B, rate);
      const cpu = (await cpuSeconds(a.pid)) + (await cpuSeconds(b.pid)) - cpu0;
      say(
        `cross-node over ${BUS}, ${rate || "flat out"}: ${cross.received} delivered, nodes' CPU ` +
          `${cpu.toFixed(2)} s: ${Math.round(cross.received / cpu)} msg per CPU second`,
      );
      const what = rate === 0 ? "flat out" : `${rate} msg/s per pair`;
      say(
        `S4 (MQTT.js) ${what}, one node: ${Math.round(one.rate)} msg/s, p99 ${
          one.p99.toFixed(1)
        } ms, lost ${one.lost}`,
      );
      say(
        `S4 (MQTT.js) ${what}, cross-node: ${Math.round(cross.rate)} msg/s, p99 ${
          cross.p99.toFixed(1)
        } ms, lost ${cross.lost}`,
      );
      if (rate === 0) {
        say(`ratio cross-node / one node (delivered): ${(cross.rate / one.rate).toFixed(2)}`);
      } else say(`ratio cross-node / one node (p99): ${(cross.p99 / one.p99).toFixed(2)}`);
    }
  } finally {
    await stop(a);
    await stop(b);
  }
});
if (kafka) {
  kafka.kill("SIGTERM");
  await kafka.status;
}
const load = (await Deno.readTextFile("/proc/loadavg")).split(" ")[0];
say(`load average (1 min) at the end: ${load}`);
await Deno.remove(dir, { recursive: true });
const outDir = env("BENCH_OUT") ?? `${ROOT}/bench/results`;
await Deno.mkdir(outDir, { recursive: true });
const file = `${outDir}/${new Date().toISOString().slice(0, 10)}-cluster${
  BUS === "kafka" ? "-kafka" : ""
}.md`;
await Deno.writeTextFile(
  file,
  `# Cluster (bench/cluster.ts, ${NAME}, bus ${BUS})\n\n${lines.map((l) => `- ${l}`).join("\n")}\n`,
);
console.log(`written: ${file}`);
