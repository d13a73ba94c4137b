/**
 * Persistent sessions: S4 (50 publishers → 50 subscribers, a topic each, 256 B, 10 s, flat out)
 * with clean session off at QoS 1 and 2, subscribers online, so every message is stored before it
 * is acknowledged. mqttx on its Redis store (a fresh redis-server, no AOF, pinned with the broker
 * to CPU 1) against Mosquitto with `persistence true` (which writes its file only every 30
 * minutes by default: per-message durability against almost none). Ratios from one run only.
 *
 * `mqttx-bun:sqlite` and `mqttx-bun:sqlite-normal` run mqttx on its SQLite store instead
 * (synchronous full / normal; the file in the run's temp dir).
 *
 * PERSIST_PORT (18950; Redis on the next port), QOS (1,2).
 *
 * `make bench` runs it after the S1–S5 scenarios (unless SCENARIOS leaves out `S4-persistent`).
 * The report gives each mqttx variant's ratio to Mosquitto (median delivered msg/s, same run) and
 * messages per CPU-second (broker + Redis), the figure to compare builds with on a busy machine.
 *
 *   deno run -A bench/persistent.ts            (make bench-persistent)
 *   BROKERS=mqttx-bun RUNS=3 deno run -A bench/persistent.ts
 *   BROKERS=mqttx-bun:sqlite,mosquitto deno run -A bench/persistent.ts
 */
import {
  BROKERS,
  BUILD,
  buildLoadgen,
  cpuTicks,
  firstConnack,
  portInUse,
  ROOT,
  sleep,
  spawnPinned,
  stop,
} from "./brokers.ts";

const env = (k: string) => Deno.env.get(k)?.trim() || undefined;
const RUNS = Number(env("RUNS") ?? 1);
const QOS = (env("QOS") ?? "1,2").split(",").map(Number);
const SCENARIO = "S4-persistent";
const scenarios = env("SCENARIOS")?.split(",");
if (scenarios && !scenarios.includes(SCENARIO)) Deno.exit(0);
// Only mqttx (any runtime, any store variant) and Mosquitto have this scenario.
const wanted = (env("BROKERS")?.split(",") ??
  ["mqttx-bun", "mqttx-bun:sqlite", "mqttx-bun:sqlite-normal", "mosquitto"])
  .filter((b) => b === "mosquitto" || b.startsWith("mqttx"));
const S4 = "--pub 50 --sub 50 --topic bench/%i --sub-topic bench/%i --size 256 --duration 10 " +
  "--timeout 60 --clean 0 --id-prefix persist-";
// PERSIST_PORT moves both (another benchmark on this machine may hold the default ones).
const PORT = Number(env("PERSIST_PORT") ?? 18950), REDIS_PORT = PORT + 1;

async function redisServer(dir: string): Promise<Deno.ChildProcess> {
  const child = spawnPinned(1, [
    "redis-server",
    ...["--port", `${REDIS_PORT}`, "--bind", "127.0.0.1", "--dir", dir],
    ...["--save", "", "--appendonly", "no"],
  ], `${dir}/redis.log`);
  await sleep(300);
  return child;
}

/** Commands Redis ran (those run by scripts included) and script calls (one per batch). */
async function redisCalls(): Promise<{ all: number; scripts: number }> {
  const out = await new Deno.Command("redis-cli", {
    args: ["-p", `${REDIS_PORT}`, "INFO", "commandstats"],
  }).output();
  const text = new TextDecoder().decode(out.stdout);
  let all = 0, scripts = 0;
  for (const m of text.matchAll(/^cmdstat_(\w+):calls=(\d+)/gm)) {
    all += Number(m[2]);
    if (m[1] === "evalsha" || m[1] === "eval") scripts += Number(m[2]);
  }
  return { all, scripts };
}

/** The broker's command with persistence on (mqttx: Redis store; Mosquitto: persistence true). */
async function command(name: string, dir: string): Promise<string[]> {
  if (name === "mosquitto") {
    const base = await Deno.readTextFile(`${ROOT}/bench/mosquitto.conf`);
    const conf = `${dir}/mosquitto.conf`;
    await Deno.writeTextFile(
      conf,
      base.replace(/^listener \d+/m, `listener ${PORT}`)
        .replace(/^persistence false/m, `persistence true\npersistence_location ${dir}/`),
    );
    return ["mosquitto", "-c", conf];
  }
  const [base, sqlite] = name.split(":");
  const cmd = await BROKERS.find((b) => b.name === base)!.command(PORT);
  const conf = `${dir}/mqttx.yml`;
  const store = sqlite
    ? `  store:\n    type: sqlite\n    synchronous: ${sqlite === "sqlite" ? "full" : "normal"}\n`
    : `  enable-test-mode: false\n  redis:\n    url: redis://127.0.0.1:${REDIS_PORT}\n`;
  await Deno.writeTextFile(
    conf,
    `mqttx:\n  host: 127.0.0.1\n  socket:\n    port: ${PORT}\n` +
      `  sys-topic:\n    enable: false\n${store}`,
  );
  return [...cmd.slice(0, cmd.indexOf("--config")), "--config", conf];
}

const loadgen = await buildLoadgen();
await Deno.mkdir(BUILD, { recursive: true }); // not made when LOADGEN names a built binary
const lines: string[] = [];
/** Per QoS and broker: delivered msg/s and msg per CPU-second of each run. */
const runs = new Map<string, { rate: number; perCpu: number }[]>();
for (const qos of QOS) {
  for (const name of wanted) {
    for (let run = 1; run <= RUNS; run++) {
      // Someone else's server there would be measured instead (or Redis would not start).
      for (const p of [PORT, REDIS_PORT]) {
        if (await portInUse(p)) throw new Error(`port ${p} already in use (set PERSIST_PORT)`);
      }
      const dir = await Deno.makeTempDir({
        dir: BUILD,
        prefix: `persist-${name.replace(":", "-")}-`,
      });
      const redis = name.startsWith("mqttx") && !name.includes(":") ? await redisServer(dir) : null;
      const broker = spawnPinned(1, await command(name, dir), `${dir}/broker.log`);
      try {
        await firstConnack(PORT, performance.now(), () => false);
        const args = [...S4.split(" "), "--qos", `${qos}`, "--port", `${PORT}`];
        const brokerBefore = await cpuTicks(broker.pid);
        const redisBefore = redis ? await cpuTicks(redis.pid) : undefined;
        const callsBefore = redis ? await redisCalls() : undefined;
        const out = await spawnPinned(0, [loadgen, ...args, "--broker-pid", `${broker.pid}`])
          .output();
        const text = new TextDecoder().decode(out.stdout);
        if (env("VERBOSE")) console.log(text);
        const r = JSON.parse(text.split("\n").find((l) => l.startsWith("RESULT "))!.slice(7));
        let redisCpu = "", redisPct = 0;
        if (redis && redisBefore) {
          const after = await cpuTicks(redis.pid);
          redisPct = (after.broker - redisBefore.broker) / (after.total - redisBefore.total) * 100;
          const calls = await redisCalls();
          const per = (n: number) => (n / r.recv).toFixed(4);
          redisCpu = `, redis cpu ${redisPct.toFixed(1)}%, redis commands per delivered message ` +
            `${per(calls.all - callsBefore!.all - 1)}, round trips ${
              per(calls.scripts - callsBefore!.scripts)
            }`;
        }
        // What else ran on CPU 1 (other sessions' work): it delays every wakeup of the
        // broker and Redis, which a store's round trips feel more than Mosquitto does.
        const brokerAfter = await cpuTicks(broker.pid);
        const ticks = brokerAfter.total - brokerBefore.total;
        // Approximate: loopback softirq time charged to the broker is not in CPU 1's busy time.
        const other = Math.max(
          0,
          (brokerAfter.busy - brokerBefore.busy - (brokerAfter.broker - brokerBefore.broker)) /
              ticks * 100 - redisPct,
        );
        const rate = r.recv_window_rate as number;
        const key = `${qos} ${name}`;
        runs.set(key, [
          ...(runs.get(key) ?? []),
          { rate, perCpu: rate / ((Number(r.broker_cpu_pct) + redisPct) / 100) },
        ]);
        const line = `S4 clean 0 qos ${qos} ${name} run ${run}: delivered ` +
          `${Math.round(r.recv_window_rate)} msg/s, lost ${r.lost ?? "?"}, dup ${r.dup ?? "?"}, ` +
          `broker cpu ${r.broker_cpu_pct}%${redisCpu}, other on CPU 1 ${other.toFixed(0)}%`;
        console.log(line);
        lines.push(line);
      } finally {
        await stop(broker);
        if (redis) await stop(redis);
      }
    }
  }
}
const median = (xs: number[]) => xs.toSorted((a, b) => a - b)[Math.floor(xs.length / 2)];
const summary: string[] = [];
for (const qos of QOS) {
  const base = runs.get(`${qos} mosquitto`);
  for (const name of wanted.filter((n) => n !== "mosquitto")) {
    const own = runs.get(`${qos} ${name}`);
    if (!own) continue;
    const rate = median(own.map((x) => x.rate)), perCpu = median(own.map((x) => x.perCpu));
    const ratio = base
      ? ` = ${(rate / median(base.map((x) => x.rate))).toFixed(2)}x Mosquitto`
      : "";
    const cpuRatio = base
      ? ` (${(perCpu / median(base.map((x) => x.perCpu))).toFixed(2)}x Mosquitto's)`
      : "";
    summary.push(
      `S4 persistent QoS ${qos} ${name}: ${Math.round(rate)} msg/s${ratio}; ` +
        `${Math.round(perCpu)} msg per CPU-second${cpuRatio}`,
    );
  }
}
for (const l of summary) console.log(l);
const out = env("BENCH_OUT") ?? `${ROOT}/bench/results`;
await Deno.mkdir(out, { recursive: true });
const stamp = new Date().toISOString().slice(0, 16).replace("T", "_").replace(":", "");
const file = `${out}/${stamp}-persistent.md`;
const load = (await Deno.readTextFile("/proc/loadavg")).split(" ")[0];
await Deno.writeTextFile(
  file,
  `# Persistent sessions (bench/persistent.ts)\n\nLoad average at the end: ${load} (2 cores).\n\n` +
    `${summary.map((l) => `- ${l}`).join("\n")}\n\nRuns:\n\n` +
    `${lines.map((l) => `- ${l}`).join("\n")}\n`,
);
// Wrapped as the repository's `deno fmt --check` wants it, so the file can be committed as is.
await new Deno.Command(Deno.execPath(), { args: ["fmt", "-q", file] }).output();
console.log(`written: ${file}`);
