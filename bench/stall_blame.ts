/**
 * Which thread held the CPU when deliveries were slow (bench/notes/cluster_hops.md, "What the
 * slowest 1% wait for"). Input: a `perf record -k CLOCK_MONOTONIC -e sched:sched_switch -C <cpu>`
 * of the measured run (read through `perf script`) and the load generator's LAT_DUMP of the same
 * run (each delivery's send time, CLOCK_MONOTONIC ns, and latency ns). Output: per thread, its CPU
 * and how often it ran ≥ 1 ms without a switch; then, for each burst of deliveries slower than the
 * run's p99, the thread with the longest unbroken run inside the burst's window (≥ 0.7 ms), or
 * "none" when the window held only short runs (the frame hold, queueing behind several turns).
 *
 *   deno run -A bench/stall_blame.ts <perf.data> <lat dump>   (cluster_ab.ts SCHED=<folder> does it)
 */

/** One unbroken stretch of a thread on the CPU, seconds. */
interface Run {
  start: number;
  secs: number;
  thread: string;
}

const SWITCH =
  /^\s*\S.*?\s+\d+\s+\[(\d+)\]\s+([\d.]+): sched:sched_switch: prev_comm=(.+?) prev_pid=(\d+) .*==> next_comm=.+? next_pid=(\d+)/;

/**
 * The runs on `cpu` whose start was seen, from `perf script` of sched_switch events: a thread
 * that took over from another. This VM's kernel records no switch away from the idle task, so a
 * run that began on an idle CPU has no known start and is left out: the CPU totals are then low
 * for a lightly loaded CPU, but a run that kept waiting threads off the CPU is counted.
 */
export function runsOf(script: string, cpu = 1): Run[] {
  const runs: Run[] = [];
  let cur: { start: number; pid: string } | undefined;
  for (const line of script.split("\n")) {
    const m = SWITCH.exec(line);
    if (!m || Number(m[1]) !== cpu) continue;
    const t = Number(m[2]);
    if (cur?.pid === m[4]) {
      runs.push({ start: cur.start, secs: t - cur.start, thread: `${m[3]}/${m[4]}` });
    }
    cur = { start: t, pid: m[5] };
  }
  return runs.filter((r) => !r.thread.startsWith("swapper/"));
}

/** [send s, latency s] of each delivery, in send order. */
export function deliveriesOf(dump: string): [number, number][] {
  return dump.split("\n").map((l) => l.trim().split(/\s+/)).filter((f) => /^\d+$/.test(f[0]))
    .map((f) => [Number(f[0]) / 1e9, Number(f[1]) / 1e9] as [number, number])
    .sort((a, b) => a[0] - b[0]);
}

export function blame(runs: Run[], deliveries: [number, number][], skipSecs = 1): string {
  const from = deliveries[0][0] + skipSecs, to = deliveries.at(-1)![0];
  const inRun = runs.filter((r) => r.start >= from && r.start <= to);
  const byThread = new Map<string, Run[]>();
  for (const r of inRun) byThread.set(r.thread, [...byThread.get(r.thread) ?? [], r]);
  const out = [`  CPU of the run after its first ${skipSecs} s (${(to - from).toFixed(1)} s):`];
  for (const [t, rs] of [...byThread].sort((a, b) => total(b[1]) - total(a[1])).slice(0, 10)) {
    const long = rs.filter((r) => r.secs >= 0.001).length;
    const max = Math.max(...rs.map((r) => r.secs));
    out.push(
      `    ${t.padEnd(24)} ${(total(rs) * 1e3).toFixed(1)} ms, ${long} runs ≥ 1 ms, ` +
        `longest ${(max * 1e3).toFixed(2)} ms`,
    );
  }
  const lat = deliveries.filter(([s]) => s >= from).map(([, l]) => l).sort((a, b) => a - b);
  const p99 = lat[Math.floor(lat.length * 0.99)];
  // A burst: slow deliveries sent within 3 ms of the burst's first.
  const bursts: [number, number][] = [];
  for (const [s, l] of deliveries) {
    if (s < from || l < p99 || (bursts.length && s - bursts.at(-1)![0] < 0.003)) continue;
    bursts.push([s, s + l]);
  }
  const who = new Map<string, number>();
  for (const [s, e] of bursts) {
    let best = { secs: 0, thread: "none" };
    for (const r of inRun) {
      const overlap = Math.min(e, r.start + r.secs) - Math.max(s, r.start);
      if (overlap > best.secs) best = { secs: overlap, thread: r.thread };
    }
    const name = best.secs >= 0.0007 ? best.thread.replace(/\/\d+$/, "") : "none";
    who.set(name, (who.get(name) ?? 0) + 1);
  }
  out.push(
    `  ${bursts.length} bursts of deliveries ≥ the p99 (${(p99 * 1e3).toFixed(2)} ms); ` +
      `the longest unbroken run inside: ` +
      [...who].sort((a, b) => b[1] - a[1]).map(([t, n]) => `${t} ${n}`).join(", "),
  );
  return out.join("\n");
}

function total(rs: Run[]): number {
  return rs.reduce((s, r) => s + r.secs, 0);
}

export async function blameFiles(perfData: string, dump: string): Promise<string> {
  const script = await new Deno.Command("perf", {
    args: ["script", "-i", perfData, "-F", "comm,tid,cpu,time,event,trace"],
    stdout: "piped",
    stderr: "null",
  }).output();
  return blame(
    runsOf(new TextDecoder().decode(script.stdout)),
    deliveriesOf(await Deno.readTextFile(dump)),
  );
}

if (import.meta.main) console.log(await blameFiles(Deno.args[0], Deno.args[1]));
