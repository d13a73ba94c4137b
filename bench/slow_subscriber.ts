/**
 * Memory under a slow reader: S2's fan-in at QoS 1 (100 publishers → one subscriber on bench/#,
 * 64 B) where the subscriber reads only ~4 KiB every 20 ms and acknowledges what it read. The
 * publishers offer far more than it takes, so a broker must hold, pause or drop; memory must stay
 * bounded (mqttx: by `max-queued-messages` per client). Samples the broker's VmRSS every 500 ms.
 *
 *   deno run -A bench/slow_subscriber.ts
 *   BROKERS=mqttx-bun,mosquitto SECONDS=30 deno run -A bench/slow_subscriber.ts
 *
 * Writes bench/results/<date>-slow-subscriber.md (BENCH_OUT to change the folder). LOADGEN as
 * for bench/run.ts.
 */
import {
  BROKERS,
  BUILD,
  buildLoadgen,
  firstConnack,
  live,
  portInUse,
  ROOT,
  rssKb,
  sleep,
  spawnPinned,
  stop,
} from "./brokers.ts";

const env = (k: string) => Deno.env.get(k)?.trim() || undefined;
const SECONDS = Number(env("SECONDS") ?? 20);
const OUT = env("BENCH_OUT") ?? `${ROOT}/bench/results`;
const wanted = env("BROKERS")?.split(",") ?? ["mqttx-deno", "mqttx-bun", "mosquitto", "aedes"];
const READ_BYTES = 4096;
const READ_EVERY_MS = 20;

const enc = new TextEncoder();
const CONNECT = new Uint8Array([
  ...[0x10, 20, 0, 4, 0x4d, 0x51, 0x54, 0x54, 4, 0x02, 0, 60, 0, 8],
  ...enc.encode("slow-sub"),
]);
// SUBSCRIBE id 1, "bench/#" at QoS 1
const SUBSCRIBE = new Uint8Array([0x82, 12, 0, 1, 0, 7, ...enc.encode("bench/#"), 1]);

interface Reader {
  received: number;
  stop(): Promise<void>;
}

/** The slow subscriber: reads a little at a time, PUBACKs every QoS 1 PUBLISH it has read. */
async function slowSubscriber(port: number): Promise<Reader> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  await conn.write(CONNECT);
  await conn.write(SUBSCRIBE);
  const state = { received: 0, running: true };
  let pending = new Uint8Array(0);
  const buf = new Uint8Array(READ_BYTES);
  const loop = (async () => {
    while (state.running) {
      const n = await conn.read(buf).catch(() => null);
      if (n === null) break;
      const data = new Uint8Array(pending.length + n);
      data.set(pending);
      data.set(buf.subarray(0, n), pending.length);
      const acks: number[] = [];
      let pos = 0;
      for (;;) {
        // fixed header: type byte + variable length
        let len = 0, mul = 1, i = pos + 1;
        for (; i < data.length && i < pos + 5; i++) {
          len += (data[i] & 127) * mul;
          mul *= 128;
          if (!(data[i] & 128)) break;
        }
        if (i >= data.length || pos + (i - pos + 1) + len > data.length) break;
        const body = i + 1;
        if ((data[pos] & 0xf0) === 0x30) {
          state.received++;
          if (data[pos] & 0x06) {
            const topicLen = (data[body] << 8) | data[body + 1];
            acks.push(0x40, 2, data[body + 2 + topicLen], data[body + 3 + topicLen]);
          }
        }
        pos = body + len;
      }
      pending = data.slice(pos);
      if (acks.length) await conn.write(new Uint8Array(acks)).catch(() => {});
      await sleep(READ_EVERY_MS);
    }
  })();
  return {
    get received() {
      return state.received;
    },
    async stop() {
      state.running = false;
      try {
        conn.close();
      } catch { /* closed */ }
      await loop;
    },
  };
}

interface Row {
  broker: string;
  before: number;
  series: number[];
  received: number;
  published: string;
}

async function runBroker(name: string, port: number, loadgen: string): Promise<Row | string> {
  const broker = BROKERS.find((b) => b.name === name);
  if (!broker) return `unknown broker ${name}`;
  const missing = await broker.missing();
  if (missing) return missing;
  if (await portInUse(port)) return `port ${port} is in use`;
  const child = spawnPinned(1, await broker.command(port), `${BUILD}/${name}.log`);
  let exited = false;
  child.status.then(() => exited = true);
  try {
    await firstConnack(port, performance.now(), () => exited);
    await sleep(1000);
    const before = (await rssKb(child.pid)) ?? 0;
    const sub = await slowSubscriber(port);
    await sleep(200);
    const lg = new Deno.Command("taskset", {
      args: [
        ...["-c", "0", loadgen, "--port", `${port}`, "--pub", "100", "--sub", "0"],
        ...["--topic", "bench/%i", "--qos", "1", "--size", "64", "--duration", `${SECONDS}`],
        ...["--timeout", `${SECONDS + 60}`, "--quiet"],
      ],
      stdout: "piped",
      stderr: "null",
    }).spawn();
    const series: number[] = [];
    let done = false;
    const out = lg.output().then((o) => {
      done = true;
      return new TextDecoder().decode(o.stdout);
    });
    while (!done) {
      await sleep(500);
      series.push((await rssKb(child.pid)) ?? 0);
    }
    const result = JSON.parse((await out).match(/RESULT (\{.*\})/)?.[1] ?? "{}");
    const received = sub.received;
    await sub.stop();
    return {
      broker: name,
      before,
      series,
      received,
      published: `${Math.round(result.pub_acked ?? 0).toLocaleString("en")}`,
    };
  } finally {
    await stop(child);
  }
}

const mb = (kb: number) => (kb / 1024).toFixed(1);

async function main() {
  const date = new Date().toISOString().slice(0, 16).replace("T", "_").replace(":", "");
  const rows: Row[] = [];
  const skipped: string[] = [];
  await Deno.mkdir(BUILD, { recursive: true }); // broker configs and logs
  const loadgen = await buildLoadgen();
  let port = Number(env("BENCH_PORT") ?? 18950);
  for (const name of wanted) {
    const r = await runBroker(name, port++, loadgen);
    if (typeof r === "string") {
      skipped.push(`${name}: ${r}`);
      console.log(`${name}: skipped (${r})`);
      continue;
    }
    rows.push(r);
    const half = Math.floor(r.series.length / 2);
    console.log(
      `${name}: RSS ${mb(r.before)} MB before; max ${mb(Math.max(...r.series))} MB; ` +
        `first half max ${mb(Math.max(...r.series.slice(0, half)))}, second half max ` +
        `${mb(Math.max(...r.series.slice(half)))}; subscriber read ${r.received}`,
    );
  }
  const lines = [
    `# Slow subscriber — ${date}`,
    "",
    `S2 fan-in at QoS 1 (100 publishers → 1 subscriber on bench/#, 64 B, ${SECONDS} s) with a`,
    `subscriber that reads ${READ_BYTES} B every ${READ_EVERY_MS} ms and acknowledges what it`,
    "read. Broker pinned to CPU 1, load generator to CPU 0; VmRSS sampled every 500 ms.",
    "`deno run -A bench/slow_subscriber.ts`. mqttx runs its defaults (`max-inflight` 100,",
    "`max-queued-messages` 1000 per client); Mosquitto runs bench/mosquitto.conf, whose",
    "`max_queued_messages 1000000` (the neutral baseline setting) queues nearly everything.",
    "",
    "| broker | RSS before MB | max, first half MB | max, second half MB | at end MB | published (acked) | read by the subscriber |",
    "| --- | --- | --- | --- | --- | --- | --- |",
  ];
  for (const r of rows) {
    const half = Math.floor(r.series.length / 2);
    lines.push(
      `| ${r.broker} | ${mb(r.before)} | ${mb(Math.max(...r.series.slice(0, half)))} | ` +
        `${mb(Math.max(...r.series.slice(half)))} | ${
          mb(r.series.at(-1) ?? 0)
        } | ${r.published} | ` +
        `${r.received.toLocaleString("en")} |`,
    );
  }
  lines.push("", "RSS every 500 ms (MB):", "");
  for (const r of rows) lines.push(`- ${r.broker}: ${r.series.map(mb).join(" ")}`);
  if (skipped.length) lines.push("", "Skipped: " + skipped.join("; "));
  await Deno.mkdir(OUT, { recursive: true });
  const file = `${OUT}/${date}-slow-subscriber.md`;
  await Deno.writeTextFile(file, lines.join("\n") + "\n");
  console.log(`wrote ${file}`);
}

Deno.addSignalListener("SIGINT", () => {
  for (const c of live) c.kill("SIGKILL");
  Deno.exit(130);
});
await main();
