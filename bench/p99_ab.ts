/**
 * Same-minute A/B of S4-rate200's latency (bench/notes/deno.md): brokers and variants take
 * turns, ROUNDS times (RATE=0: S4 flat out; S5=1: S5's idle connections instead), each a fresh broker pinned to CPU 1 with the load generator on CPU 0, as
 * bench/run.ts runs them; prints each run's p50/p99/p999, the broker's CPU µs per message and
 * the other load on CPU 1, then the medians and each one's p99 ÷ Mosquitto's. TIMELINE=1 adds
 * each run's p99 per second; a variant named `<name>+warm` (or WARM=S for all) first gets 3 s
 * (S s) of the same load on the same broker, so a fresh broker's warm-up is left out.
 *
 *   ROUNDS=3 VARIANTS=mosquitto,mqttx-deno deno run -A bench/p99_ab.ts
 *   EXTRA='deno-ss16=deno run -A --v8-flags=--max-semi-space-size=16 src/main.ts --config {config}'
 *
 * VARIANTS (mosquitto,mqttx-deno): names from bench/brokers.ts, or of EXTRA, whose entries
 * (`name=command`, `;` between them) start mqttx with another command line (`{config}` is the
 * config file; `deno` and `bun` are looked up in node_modules/.bin). A broker log with
 * `--trace-gc` lines also gets its scavenges counted. SECS (10): the window; RATE (200); RT=1
 * runs the broker's main thread and the load generator at `chrt -f 10`, out of reach of the
 * machine's other load (not make bench's conditions: for A/B of the broker's own delays).
 * HICCUP=MS stops the load generator for MS ms 2 s into the load (a stalled client).
 */
import {
  BUILD,
  buildLoadgen,
  cpuTicks,
  firstConnack,
  ROOT,
  sleep,
  spawnPinned,
  stop,
  variantCommand,
} from "./brokers.ts";

const env = (k: string, d: string) => Deno.env.get(k)?.trim() || d;
const rounds = Number(env("ROUNDS", "3"));
const secs = env("SECS", "10");
const rate = env("RATE", "200"); // 0: flat out (S4)
// WARM=S (or a variant named `<name>+warm`: 3 s): the same load first, on the same broker
const warm = env("WARM", "0");
const S5 = env("S5", "") === "1";
// TIMELINE=1: the p99 of each second of the run (where the slowest 1% falls)
const TIMELINE = env("TIMELINE", "") === "1"; // S5 instead: 10,000 idle connections, KB per connection
// RT=1: the broker's main thread and the load generator at SCHED_FIFO 10 (out of reach of
// other sessions' work)
const RT = env("RT", "") === "1" ? ["chrt", "-f", "10"] : [];
// HICCUP=MS: the load generator is stopped for MS ms, 2 s into the measured load (a client
// that stalls: every subscriber's inflight window fills), to see how the broker recovers
const HICCUP = Number(env("HICCUP", "0"));
const names = env("VARIANTS", "mosquitto,mqttx-deno").split(",").map((s) => s.trim());
async function command(full: string, port: number): Promise<string[]> {
  return await variantCommand(full.replace(/\+warm$/, ""), port);
}

interface Row {
  name: string;
  p50: number;
  p99: number;
  p999: number;
  usPerMsg: number;
  other: number;
  rss: string;
  gc: string;
}

async function runOnce(loadgen: string, name: string, port: number): Promise<Row> {
  const log = `${BUILD}/logs/p99ab-${name}-${port}.broker.log`;
  const t0 = performance.now();
  const child = spawnPinned(1, await command(name, port), log);
  // the event-loop thread only: Deno's other threads at SCHED_FIFO on one CPU starve each other
  if (RT.length) {
    await new Deno.Command("chrt", { args: ["-f", "-p", "10", `${child.pid}`] }).output();
  }
  try {
    await firstConnack(port, t0, () => false);
    await sleep(1000);
    const load = S5 ? ["--connect-only", "10000", "--hold", "5"] : [
      ...["--pub", "50", "--sub", "50", "--topic", "bench/%i", "--sub-topic", "bench/%i"],
      ...["--qos", "1", "--size", "256", "--duration", secs],
      ...(rate === "0" ? [] : ["--rate", rate]),
    ];
    const args = [
      ...load,
      ...["--timeout", "90", "--port", `${port}`, "--broker-pid", `${child.pid}`],
    ];
    // WARM=S: the same load for S seconds first, on the same broker (a warmed JIT and heap)
    if (warm !== "0" || name.endsWith("+warm")) {
      const w = args.map((a, i) => args[i - 1] === "--duration" ? (warm === "0" ? "3" : warm) : a);
      await spawnPinned(0, [...RT, loadgen, ...w]).output();
      await sleep(500);
    }
    const before = await cpuTicks(child.pid);
    const dump = `${BUILD}/logs/p99ab-${name}-${port}.lat`;
    const dumpEnv = TIMELINE ? ["env", `LAT_DUMP=${dump}`] : [];
    const lg = spawnPinned(0, [...dumpEnv, ...RT, loadgen, ...args]);
    if (HICCUP > 0) {
      sleep(2000).then(async () => {
        Deno.kill(lg.pid, "SIGSTOP");
        await sleep(HICCUP);
        Deno.kill(lg.pid, "SIGCONT");
      });
    }
    const out = await lg.output();
    if (TIMELINE) console.log(`${name}: p99 per second (µs) ${await perSecondP99(dump)}`);
    const after = await cpuTicks(child.pid);
    const text = new TextDecoder().decode(out.stdout);
    const line = text.split("\n").find((l) => l.startsWith("RESULT "));
    if (!line) throw new Error(`${name}: no RESULT\n${text}`);
    const r = JSON.parse(line.slice(7));
    const ticks = after.total - before.total;
    const brokerTicks = after.broker - before.broker;
    const other = (after.busy - before.busy - brokerTicks) / ticks;
    await stop(child);
    const gcLines = (await Deno.readTextFile(log).catch(() => "")).split("\n");
    const scav = gcLines.map((l) => l.match(/Scavenge.*?MB, ([\d.]+) \/ [\d.]+ ms/))
      .filter((m) => m).map((m) => Number(m![1]));
    const marks = gcLines.filter((l) => /Mark-Compact|Mark-Sweep/.test(l)).length;
    if (S5) console.log(`${name}: ${r.broker_kb_per_conn} KB/conn`);
    return {
      name,
      p50: r.lat_us?.p50 ?? 0,
      p99: r.lat_us?.p99 ?? 0,
      p999: r.lat_us?.p999 ?? 0,
      usPerMsg: brokerTicks * 10_000 / (r.recv || 1), // 100 ticks/s
      other: Math.round(other * 100),
      rss: `${Math.round(r.broker_rss_kb_before / 1024)}→${
        Math.round(r.broker_rss_kb_end / 1024)
      } MB`,
      gc: scav.length
        ? `${scav.length} scavenges, pause median ${median(scav).toFixed(2)} p90 ` +
          `${[...scav].sort((a, b) => a - b)[Math.floor(scav.length * 0.9)].toFixed(2)} ms, ` +
          `total ${scav.reduce((a, b) => a + b, 0).toFixed(0)} ms, ${marks} mark`
        : "",
    };
  } finally {
    await stop(child);
  }
}

/** The load generator's LAT_DUMP (send ns, latency ns per delivery): p99 of each second. */
async function perSecondP99(file: string): Promise<string> {
  const rows = (await Deno.readTextFile(file)).trim().split("\n").map((l) => l.split(" "));
  const t0 = rows.reduce((m, r) => (BigInt(r[0]) < m ? BigInt(r[0]) : m), BigInt(rows[0][0]));
  const secs: number[][] = [];
  for (const [sent, lat] of rows) {
    (secs[Number((BigInt(sent) - t0) / 1_000_000_000n)] ??= []).push(Number(lat) / 1000);
  }
  return secs.map((v) => Math.round(v.sort((a, b) => a - b)[Math.floor(v.length * 0.99)]))
    .join(" ");
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)];

const loadgen = await buildLoadgen();
await Deno.mkdir(`${BUILD}/logs`, { recursive: true });
Deno.chdir(ROOT);
const rows: Row[] = [];
let port = Number(env("BENCH_PORT", "18950"));
for (let round = 1; round <= rounds; round++) {
  for (const name of names) {
    const row = await runOnce(loadgen, name, port++);
    rows.push(row);
    console.log(
      `#${round} ${name.padEnd(14)} p50 ${row.p50} p99 ${row.p99} p999 ${row.p999} µs, ` +
        `${row.usPerMsg.toFixed(1)} cpu-µs/msg, other ${row.other}%, rss ${row.rss} ${row.gc}`,
    );
    await sleep(500);
  }
}
const mosq = median(rows.filter((r) => r.name === "mosquitto").map((r) => r.p99));
console.log(`\nmedians over ${rounds} rounds (load ${Deno.loadavg().map((x) => x.toFixed(1))})`);
for (const name of names) {
  const mine = rows.filter((r) => r.name === name);
  const p99 = median(mine.map((r) => r.p99));
  const ratios = mine.map((r, i) => {
    const m = rows.filter((x) => x.name === "mosquitto")[i]?.p99;
    return m ? (r.p99 / m).toFixed(2) : "?";
  });
  console.log(
    `${name.padEnd(14)} p50 ${median(mine.map((r) => r.p50))} p99 ${p99} ` +
      `p999 ${median(mine.map((r) => r.p999))} µs, ` +
      `${median(mine.map((r) => r.usPerMsg)).toFixed(1)} cpu-µs/msg` +
      (mosq ? `, p99 ÷ mosquitto ${(p99 / mosq).toFixed(2)} (per round ${ratios.join(" ")})` : ""),
  );
}
