/**
 * Where a fresh broker's CPU goes in S1 QoS 0 (bench/notes/s1_bun.md): the 1,000 CONNECTs against
 * the 100,000 PUBLISHes. Like s1_ab.ts (a fresh broker on CPU 1, a second's rest, the load
 * generator on CPU 0), while the CPU of each of the broker's threads and the bytes the load
 * generator has read (/proc/PID/io rchar: it uses read(2)) are sampled every millisecond. The
 * phases, by what the load generator has read:
 *   connect  from its start until the 1,000 CONNACKs (4 bytes each)
 *   publish  until the 4,000 PINGRESPs (2 bytes each) that answer its PUBLISHes (the last one
 *            after each client's last PUBLISH: every PUBLISH was handled)
 *   tail     the rest: the DISCONNECTs and the closes
 * Prints per run the CPU of each phase (the main thread and the others: JIT, GC), and medians.
 *
 *   ROUNDS=6 VARIANTS=mqttx-bun,mosquitto taskset -c 0 deno run -A bench/s1_phases.ts
 *
 * The sampling costs CPU beside the load generator (pin it to CPU 0, off the broker's CPU) and
 * slows it: the rates it prints are lower than s1_ab.ts's; compare the phases' CPU.
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

const env = (k: string, d: string) => Deno.env.get(k)?.trim() || d;
const rounds = Number(env("ROUNDS", "4"));
const names = env("VARIANTS", "mqttx-bun").split(",").map((s) => s.trim());
const CONNACKS = 1000 * 4, PINGRESPS = 1000 * 4 * 2;

/** ns of CPU of `pid`'s main thread and of the others, and the bytes `reader` has read so far. */
async function sample(
  pid: number,
  reader: number,
): Promise<{ main: number; other: number; rchar: number }> {
  let main = 0, other = 0;
  for await (const t of Deno.readDir(`/proc/${pid}/task`)) {
    const text = await Deno.readTextFile(`/proc/${pid}/task/${t.name}/schedstat`).catch(() => "");
    const ns = Number(text.split(" ")[0]) || 0;
    if (t.name === `${pid}`) main += ns;
    else other += ns;
  }
  const io = await Deno.readTextFile(`/proc/${reader}/io`).catch(() => "rchar: 0");
  return { main, other, rchar: Number(io.match(/^rchar: (\d+)/m)![1]) };
}

interface Phase {
  main: number;
  other: number;
  ms: number;
}
type Row = { name: string; connect: Phase; publish: Phase; tail: Phase; rate: number };

async function runOnce(loadgen: string, name: string, port: number, base: number): Promise<Row> {
  const b = BROKERS.find((b) => b.name === name)!;
  const t0 = performance.now();
  const child = spawnPinned(1, await b.command(port), `${BUILD}/logs/s1ph-${name}.broker.log`);
  try {
    await firstConnack(port, t0, () => false);
    await sleep(1000);
    const args = [
      ...["--pub", "1000", "--size", "1024", "--count", "100", "--qos", "0", "--timeout", "90"],
      ...["--port", `${port}`, "--quiet"],
    ];
    const start = { ...(await sample(child.pid, 0)), t: performance.now() };
    const marks: (typeof start)[] = [];
    const lgChild = spawnPinned(0, [loadgen, ...args]);
    const lg = lgChild.output();
    let done = false;
    lg.finally(() => done = true);
    let phase = 0;
    while (!done) {
      const s = { ...(await sample(child.pid, lgChild.pid)), t: performance.now() };
      if (phase === 0 && s.rchar >= base + CONNACKS) marks[phase++] = s;
      if (phase === 1 && s.rchar >= base + CONNACKS + PINGRESPS) marks[phase++] = s;
      await sleep(1);
    }
    const end = { ...(await sample(child.pid, 0)), t: performance.now() };
    const out = new TextDecoder().decode((await lg).stdout);
    const line = out.split("\n").find((l) => l.startsWith("RESULT "));
    const r = JSON.parse(line!.slice(7));
    const [a, c] = [marks[0] ?? end, marks[1] ?? end];
    const diff = (x: typeof start, y: typeof start): Phase => ({
      main: (y.main - x.main) / 1e6,
      other: (y.other - x.other) / 1e6,
      ms: y.t - x.t,
    });
    return {
      name,
      connect: diff(start, a),
      publish: diff(a, c),
      tail: diff(c, end),
      rate: r.pub_rate,
    };
  } finally {
    await stop(child);
  }
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)];
const f = (p: Phase) =>
  `${p.main.toFixed(0)}+${p.other.toFixed(0)} ms CPU in ${p.ms.toFixed(0)} ms`;

/**
 * What the load generator reads before any network input (its loader, via bash and taskset):
 * measured against a listener that never answers.
 */
async function calibrate(loadgen: string, port: number): Promise<number> {
  const listener = Deno.listen({ hostname: "127.0.0.1", port });
  const held: Deno.Conn[] = [];
  (async () => {
    for await (const c of listener) held.push(c);
  })().catch(() => {});
  const lg = spawnPinned(0, [loadgen, "--pub", "1", "--port", `${port}`, "--timeout", "2"]);
  await sleep(500);
  const io = await Deno.readTextFile(`/proc/${lg.pid}/io`);
  await lg.output();
  listener.close();
  for (const c of held) c.close();
  return Number(io.match(/^rchar: (\d+)/m)![1]);
}

const loadgen = await buildLoadgen();
await Deno.mkdir(`${BUILD}/logs`, { recursive: true });
Deno.chdir(ROOT);
const rows: Row[] = [];
let port = Number(env("BENCH_PORT", "18860"));
const base = await calibrate(loadgen, port++);
for (let round = 1; round <= rounds; round++) {
  const order = round % 2 ? names : [...names].reverse();
  for (const name of order) {
    const row = await runOnce(loadgen, name, port++, base);
    rows.push(row);
    console.log(
      `#${round} ${name.padEnd(15)} ${Math.round(row.rate / 1000)}k/s  connect ${f(row.connect)}` +
        `; publish ${f(row.publish)}; tail ${f(row.tail)}`,
    );
    await sleep(300);
  }
}
console.log(
  `\nmedians (main+other threads, ms CPU), load ${Deno.loadavg().map((x) => x.toFixed(1))}`,
);
for (const name of names) {
  const mine = rows.filter((r) => r.name === name);
  const m = (k: "connect" | "publish" | "tail", p: keyof Phase) => median(mine.map((r) => r[k][p]));
  const ph = (k: "connect" | "publish" | "tail") =>
    `${m(k, "main").toFixed(1)}+${m(k, "other").toFixed(1)} (${m(k, "ms").toFixed(0)} ms wall)`;
  console.log(
    `${name.padEnd(15)} ${Math.round(median(mine.map((r) => r.rate)) / 1000)}k/s; ` +
      `connect ${ph("connect")}; publish ${ph("publish")}; tail ${ph("tail")}`,
  );
}
