/**
 * Same-minute A/B of S1 QoS 0 (bench/notes/s1_bun.md): brokers and variants take
 * turns, ROUNDS times, each a fresh broker pinned to CPU 1 and given a second, then the load
 * generator on CPU 0 with S1 QoS 0's arguments (1,000 publishers × 100 × 1 KiB, connects
 * included). Prints, per run, pub msg/s, messages per broker CPU-second (the CPU of every thread
 * of the broker, JIT compilers included, from /proc/PID/task/../schedstat: nanoseconds, not
 * 10 ms ticks) and the other load on CPU 1; then the medians.
 *
 *   MQTTX_BASE=/tmp/base ROUNDS=8 VARIANTS=mqttx-bun,mqttx-bun-base deno run -A bench/s1_ab.ts
 *
 * VARIANTS (mqttx-bun,mqttx-bun-base): names from bench/brokers.ts or EXTRA (as in p99_ab.ts).
 * QOS (0), COUNT (100). WARM: load generator arguments of an unmeasured run into each mqttx
 * broker before the measured one (e.g. WARM="--pub 1000 --size 1024 --count 100 --qos 0": the
 * same burst on a warm broker).
 */
import {
  BUILD,
  buildLoadgen,
  cpuTicks,
  firstConnack,
  readProc,
  ROOT,
  sleep,
  spawnPinned,
  stop,
  variantCommand,
} from "./brokers.ts";

const env = (k: string, d: string) => Deno.env.get(k)?.trim() || d;
const rounds = Number(env("ROUNDS", "5"));
const qos = env("QOS", "0");
const count = env("COUNT", "100");
const names = env("VARIANTS", "mqttx-bun,mqttx-bun-base").split(",").map((s) => s.trim());

/** CPU of every thread of `pid` so far, ns (threads that ended are lost: read before stop). */
async function cpuNs(pid: number): Promise<number> {
  let total = 0;
  try {
    for await (const t of Deno.readDir(`/proc/${pid}/task`)) {
      const f = (await readProc(`/proc/${pid}/task/${t.name}/schedstat`)).split(" ");
      total += Number(f[0]) || 0;
    }
  } catch {
    return NaN; // the broker is gone
  }
  return total;
}

interface Row {
  name: string;
  rate: number;
  perCpuS: number;
  cpuMs: number;
  other: number;
}

async function runOnce(loadgen: string, name: string, port: number): Promise<Row> {
  const t0 = performance.now();
  const child = spawnPinned(
    1,
    await variantCommand(name, port),
    `${BUILD}/logs/s1ab-${name}.broker.log`,
  );
  try {
    await firstConnack(port, t0, () => false);
    const warm = Deno.env.get("WARM"); // loadgen arguments of a run before the measured one
    if (warm && !name.startsWith("mosquitto")) {
      await spawnPinned(0, [loadgen, ...warm.split(" "), "--port", `${port}`]).output();
    }
    await sleep(1000);
    const args = [
      ...["--pub", "1000", "--size", "1024", "--count", count, "--qos", qos],
      ...["--timeout", "90", "--port", `${port}`, "--broker-pid", `${child.pid}`],
    ];
    const ticks0 = await cpuTicks(child.pid);
    const ns0 = await cpuNs(child.pid);
    const out = await spawnPinned(0, [loadgen, ...args]).output();
    const ns1 = await cpuNs(child.pid);
    const ticks1 = await cpuTicks(child.pid);
    const text = new TextDecoder().decode(out.stdout);
    const line = text.split("\n").find((l) => l.startsWith("RESULT "));
    if (!line) throw new Error(`${name}: no RESULT\n${text}`);
    const r = JSON.parse(line.slice(7));
    const brokerTicks = ticks1.broker - ticks0.broker;
    const cpuMs = (ns1 - ns0) / 1e6;
    return {
      name,
      rate: r.pub_rate,
      perCpuS: r.pub_acked / (cpuMs / 1000),
      cpuMs,
      other: Math.round(
        100 * (ticks1.busy - ticks0.busy - brokerTicks) / (ticks1.total - ticks0.total),
      ),
    };
  } finally {
    await stop(child);
  }
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)];
const k = (x: number) => `${Math.round(x / 1000)}k`;

const loadgen = await buildLoadgen();
await Deno.mkdir(`${BUILD}/logs`, { recursive: true });
Deno.chdir(ROOT);
const rows: Row[] = [];
let port = Number(env("BENCH_PORT", "18960")); // another range than other runs on the machine
for (let round = 1; round <= rounds; round++) {
  // Alternate which goes first, so a drift in the background load hits both alike.
  const order = round % 2 ? names : [...names].reverse();
  for (const name of order) {
    const row = await runOnce(loadgen, name, port++).catch((e) => {
      console.log(`#${round} ${name}: failed (${String(e).split("\n")[0]})`);
      return null;
    });
    if (!row) continue;
    rows.push(row);
    console.log(
      `#${round} ${name.padEnd(16)} pub ${k(row.rate)}/s, ${k(row.perCpuS)} msgs/broker-CPU-s ` +
        `(${row.cpuMs.toFixed(0)} ms), other on CPU 1 ${row.other}%`,
    );
    await sleep(300);
  }
}
console.log(`\nmedians over ${rounds} rounds (load ${Deno.loadavg().map((x) => x.toFixed(1))})`);
for (const name of names) {
  const mine = rows.filter((r) => r.name === name && r.cpuMs > 0);
  console.log(
    `${name.padEnd(16)} pub ${k(median(mine.map((r) => r.rate)))}/s, ` +
      `${k(median(mine.map((r) => r.perCpuS)))} msgs/broker-CPU-s, ` +
      `CPU ${median(mine.map((r) => r.cpuMs)).toFixed(0)} ms ` +
      `[${mine.map((r) => r.cpuMs.toFixed(0)).join(" ")}]`,
  );
}
