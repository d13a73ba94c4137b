/**
 * Bridge benchmark: mqttx (Bun, `bun src/main_bun.ts`) bridging `bench/#` to an
 * upstream Mosquitto, with the in-memory, the SQLite and the Redis store.
 *
 *   deno run -A bench/bridge.ts [N=20000] [BACKLOG=100000]
 *   BRIDGE_QOS=2 (default 1): the QoS of the whole path; BRIDGE_BENCH=sqlite/full: one store only
 *
 * 1. Throughput: an MQTT.js publisher sends N QoS 1 messages to mqttx (100 in
 *    flight); time until a QoS 1 subscriber on Mosquitto has all of them.
 * 2. Drain: Mosquitto stopped, BACKLOG QoS 1 messages published to mqttx (each
 *    acknowledged, so queued by the bridge), Mosquitto started again: time
 *    from its restart until the (persistent) subscriber has all of them.
 * sqlite runs with synchronous full and normal; redis against a redis-server
 * started here (no AOF); Mosquitto 2.0 as the edge broker (its own bridge,
 * `topic bench/# out 1`, queue in memory) gives the ratio. Each phase also
 * prints the edge broker's CPU time (user+sys from /proc) and messages per
 * CPU-second, which is what to compare on a shared machine; wall-clock msg/s
 * are single runs: read them as orders of magnitude, ratios from one run.
 */
import mqtt from "mqtt";
import { type ChildProcess, spawn } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { freePort, startUpstream, type Upstream } from "../tests/helpers/upstream_mosquitto.ts";
import { RedisServer } from "../tests/helpers/redis_server.ts";

/** User+sys CPU seconds of a process so far (Linux /proc; clock ticks at 100 Hz). */
function cpuSeconds(pid: number | undefined): number {
  if (pid === undefined) return NaN;
  const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

function perCpu(n: number, cpu: number): string {
  return `CPU ${cpu.toFixed(2)} s = ${(n / cpu).toFixed(0)} msg/CPU-s`;
}

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const N = Number(process.argv[2] ?? 20_000);
const BACKLOG = Number(process.argv[3] ?? 100_000);
const BUN = path.join(ROOT, "node_modules/.bin/bun");
const QOS = Number(process.env.BRIDGE_QOS ?? 1) as 1 | 2;

function startMqttx(configFile: string): Promise<{ child: ChildProcess; url: string }> {
  const child = spawn(BUN, [path.join(ROOT, "src/main_bun.ts"), "--config", configFile], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  return new Promise((resolve, reject) => {
    let out = "";
    child.stdout!.on("data", (d) => {
      out += d;
      const m = out.match(/listening on (mqtt:\/\/127\.0\.0\.1:\d+)/);
      if (m) resolve({ child, url: m[1] });
    });
    child.once("close", () => reject(new Error(`mqttx exited: ${out}`)));
  });
}

async function connect(url: string, opts: mqtt.IClientOptions = {}): Promise<mqtt.MqttClient> {
  return await mqtt.connectAsync(url, { reconnectPeriod: 0, ...opts });
}

/** Publish `n` messages at QOS with up to `window` unacknowledged. */
async function publishMany(c: mqtt.MqttClient, n: number, window = 100): Promise<void> {
  const payload = Buffer.alloc(64, 1);
  let next = 0;
  const worker = async () => {
    while (next < n) {
      next++;
      await c.publishAsync("bench/x", payload, { qos: QOS });
    }
  };
  await Promise.all(Array.from({ length: window }, worker));
}

function counter(c: mqtt.MqttClient) {
  let count = 0;
  const waiters: [number, () => void][] = [];
  c.on("message", () => {
    count++;
    for (const w of waiters.filter(([n]) => count >= n)) {
      waiters.splice(waiters.indexOf(w), 1);
      w[1]();
    }
  });
  return {
    get count() {
      return count;
    },
    reached: (n: number) =>
      count >= n ? Promise.resolve() : new Promise<void>((r) => waiters.push([n, r])),
  };
}

/** Mosquitto as the edge broker, with its own bridge to the upstream (for the ratio). */
async function startMosquittoEdge(
  dir: string,
  upstreamPort: number,
  persistence: boolean,
): Promise<{ child: ChildProcess; url: string }> {
  const port = await freePort();
  const conf = path.join(dir, "edge.conf");
  fs.writeFileSync(
    conf,
    [
      `listener ${port} 127.0.0.1`,
      "allow_anonymous true",
      "user root",
      `persistence ${persistence}`,
      `persistence_location ${dir}/`,
      "max_queued_messages 0",
      "connection up",
      `address 127.0.0.1:${upstreamPort}`,
      `topic bench/# out ${QOS}`,
      "cleansession false",
      "restart_timeout 1",
      "",
    ].join("\n"),
  );
  const child = spawn("mosquitto", ["-c", conf], { stdio: ["ignore", "ignore", "ignore"] });
  for (let i = 0; i < 100; i++) {
    try {
      (await connect(`mqtt://127.0.0.1:${port}`)).end(true);
      return { child, url: `mqtt://127.0.0.1:${port}` };
    } catch {
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  throw new Error("edge mosquitto did not start");
}

async function run(
  store: "memory" | "sqlite" | "redis" | "mosquitto",
  synchronous = "full",
): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "mqttx-bench-bridge-"));
  let upstream: Upstream | undefined;
  let mqttx: ChildProcess | undefined;
  let redis: RedisServer | undefined;
  try {
    upstream = await startUpstream();
    if (store === "redis") redis = await RedisServer.start();
    const config = path.join(dir, "mqttx.yml");
    fs.writeFileSync(
      config,
      `host: 127.0.0.1\nsocket:\n  port: 0\nmax-inflight: 1000\nstore:\n  type: ${store}\n` +
        (store === "sqlite" ? `  synchronous: ${synchronous}\n` : "") +
        (redis ? `redis:\n  url: ${redis.url}\n` : "") +
        `bridges:\n  - name: up\n    url: ${upstream.url}\n    reconnect-delay: 200ms\n` +
        `    reconnect-max-delay: 1s\n    topics: [{ filter: "bench/#", qos: ${QOS} }]\n`,
    );
    const m = store === "mosquitto"
      ? await startMosquittoEdge(dir, upstream.port, synchronous === "persistence")
      : await startMqttx(config);
    mqttx = m.child;
    const subId = `bench-sub-${process.pid}`;
    let sub = await connect(upstream.url, { clientId: subId, clean: false });
    await sub.subscribeAsync("bench/#", { qos: QOS });
    let got = counter(sub);
    const pub = await connect(m.url);
    await new Promise((r) => setTimeout(r, 500)); // the bridge connects

    const t0 = performance.now();
    const c0 = cpuSeconds(mqttx.pid);
    await publishMany(pub, N);
    await got.reached(N);
    const ms = performance.now() - t0;
    const c1 = cpuSeconds(mqttx.pid);
    const label = store === "memory" || store === "redis" ? store : `${store}/${synchronous}`;
    const rate = (N / ms * 1000).toFixed(0);
    console.log(
      `${label}: bridged ${N} QoS ${QOS} in ${ms.toFixed(0)} ms = ${rate} msg/s; ${
        perCpu(N, c1 - c0)
      }`,
    );

    await sub.endAsync();
    await upstream.stop();
    const t1 = performance.now();
    await publishMany(pub, BACKLOG);
    const queuedMs = performance.now() - t1;
    const t2 = performance.now();
    const c2 = cpuSeconds(mqttx.pid);
    await upstream.start();
    // Counting from before CONNACK: the queued messages may come in the same read.
    sub = mqtt.connect(upstream.url, { reconnectPeriod: 0, clientId: subId, clean: false });
    got = counter(sub);
    await new Promise((resolve, reject) => sub.once("connect", resolve).once("error", reject));
    await got.reached(BACKLOG);
    const drainMs = performance.now() - t2;
    const c3 = cpuSeconds(mqttx.pid);
    console.log(
      `${label}: ${BACKLOG} queued while down in ${queuedMs.toFixed(0)} ms ` +
        `(${(BACKLOG / queuedMs * 1000).toFixed(0)} msg/s acknowledged); drained ` +
        `${(drainMs / 1000).toFixed(1)} s after the upstream restarted ` +
        `(${(BACKLOG / drainMs * 1000).toFixed(0)} msg/s, incl. reconnect backoff); drain ` +
        perCpu(BACKLOG, c3 - c2) + `; queueing ${perCpu(BACKLOG, c2 - c1)}`,
    );
    await pub.endAsync();
    await sub.endAsync();
  } finally {
    mqttx?.kill("SIGKILL");
    await upstream?.remove();
    await redis?.dispose();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

const only = process.env.BRIDGE_BENCH; // e.g. "memory" or "sqlite/normal"
for (
  const [store, sync] of [
    ["memory"],
    ["sqlite", "full"],
    ["sqlite", "normal"],
    ["redis"],
    ["mosquitto", "in-memory"],
  ] as const
) {
  if (!only || only === (sync ? `${store}/${sync}` : store)) await run(store, sync);
}
