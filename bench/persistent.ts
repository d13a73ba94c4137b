/**
 * Persistent sessions: S4 (50 publishers → 50 subscribers, a topic each, 256 B, 10 s, flat out)
 * with clean session off at QoS 1 and 2, subscribers online, so every message is stored before it
 * is acknowledged. mqttx on its Redis store (a fresh redis-server, no AOF, pinned with the broker
 * to CPU 1) against Mosquitto with `persistence true` (which writes its file only every 30
 * minutes by default: per-message durability against almost none). Ratios from one run only.
 *
 *   deno run -A bench/persistent.ts            (make bench-persistent)
 *   BROKERS=mqttx-bun RUNS=3 deno run -A bench/persistent.ts
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
const RUNS = Number(env("RUNS") ?? 1);
const wanted = env("BROKERS")?.split(",") ?? ["mqttx-bun", "mosquitto"];
const S4 = "--pub 50 --sub 50 --topic bench/%i --sub-topic bench/%i --size 256 --duration 10 " +
  "--timeout 60 --clean 0 --id-prefix persist-";
const PORT = 18950, REDIS_PORT = 18951;

async function redisServer(dir: string): Promise<Deno.ChildProcess> {
  const child = spawnPinned(1, [
    "redis-server",
    ...["--port", `${REDIS_PORT}`, "--bind", "127.0.0.1", "--dir", dir],
    ...["--save", "", "--appendonly", "no"],
  ], `${dir}/redis.log`);
  await sleep(300);
  return child;
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
  const cmd = await BROKERS.find((b) => b.name === name)!.command(PORT);
  const conf = `${dir}/mqttx.yml`;
  await Deno.writeTextFile(
    conf,
    `mqttx:\n  host: 127.0.0.1\n  enable-test-mode: false\n  socket:\n    port: ${PORT}\n` +
      `  sys-topic:\n    enable: false\n  redis:\n    url: redis://127.0.0.1:${REDIS_PORT}\n`,
  );
  return [...cmd.slice(0, cmd.indexOf("--config")), "--config", conf];
}

const loadgen = await buildLoadgen();
const lines: string[] = [];
for (const qos of [1, 2]) {
  for (const name of wanted) {
    for (let run = 1; run <= RUNS; run++) {
      const dir = await Deno.makeTempDir({ dir: BUILD, prefix: `persist-${name}-` });
      const redis = name.startsWith("mqttx") ? await redisServer(dir) : null;
      const broker = spawnPinned(1, await command(name, dir), `${dir}/broker.log`);
      try {
        await firstConnack(PORT, performance.now(), () => false);
        const args = [...S4.split(" "), "--qos", `${qos}`, "--port", `${PORT}`];
        const redisBefore = redis ? await cpuTicks(redis.pid) : undefined;
        const out = await spawnPinned(0, [loadgen, ...args, "--broker-pid", `${broker.pid}`])
          .output();
        const text = new TextDecoder().decode(out.stdout);
        if (env("VERBOSE")) console.log(text);
        const r = JSON.parse(text.split("\n").find((l) => l.startsWith("RESULT "))!.slice(7));
        let redisCpu = "";
        if (redis && redisBefore) {
          const after = await cpuTicks(redis.pid);
          const pct = (after.broker - redisBefore.broker) / (after.total - redisBefore.total) * 100;
          redisCpu = `, redis cpu ${pct.toFixed(1)}%`;
        }
        const line = `S4 clean 0 qos ${qos} ${name} run ${run}: delivered ` +
          `${Math.round(r.recv_window_rate)} msg/s, lost ${r.lost ?? "?"}, dup ${r.dup ?? "?"}, ` +
          `broker cpu ${r.broker_cpu_pct}%${redisCpu}`;
        console.log(line);
        lines.push(line);
      } finally {
        await stop(broker);
        if (redis) await stop(redis);
      }
    }
  }
}
const out = env("BENCH_OUT") ?? `${ROOT}/bench/results`;
await Deno.mkdir(out, { recursive: true });
const file = `${out}/${new Date().toISOString().slice(0, 10)}-persistent.md`;
await Deno.writeTextFile(
  file,
  `# Persistent sessions (bench/persistent.ts)\n\n${lines.map((l) => `- ${l}`).join("\n")}\n`,
);
console.log(`written: ${file}`);
