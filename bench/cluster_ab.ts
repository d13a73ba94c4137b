/**
 * Same-minute A/B of the cross-node cost: for each broker build named in BROKERS (default
 * mqttx-bun,mqttx-bun-base; MQTTX_BASE=<another checkout>), a Redis and nodes A and B on CPU 1,
 * S4 on A only and S4 publishers on A / subscribers on B, ROUNDS times alternating builds.
 * Prints CPU µs per delivered message of node A, node B and Redis.
 *
 *   MQTTX_BASE=/tmp/base ROUNDS=3 deno run -A bench/cluster_ab.ts
 *
 * RATE=200: S4-rate200 (latency); INFLIGHT=1: one QoS 1 message unacknowledged per publisher.
 * ALONE=1: instead, one node on CPU 1 with cluster.enable false ("plain") against one with it
 * and no peer ("alone"), S4 flat out, alternating; prints msg/s and µs of CPU per message.
 * SCHED=<folder>: which thread held CPU 1 while the slowest deliveries waited (stall_blame.ts).
 */
import { BROKERS, buildLoadgen, ROOT, spawnPinned } from "./brokers.ts";
import { cpuDuring, scratch, startNode, startRedis, stopAll } from "./cluster_nodes.ts";
import { blameFiles } from "./stall_blame.ts";

const env = (k: string) => Deno.env.get(k)?.trim() || undefined;
const BUILDS = (env("BROKERS") ?? "mqttx-bun,mqttx-bun-base").split(",");
const ROUNDS = Number(env("ROUNDS") ?? 2);
const SECS = Number(env("SECS") ?? 6);
const RATE = env("RATE"); // e.g. 200: S4-rate200 (p99) instead of flat out
// INFLIGHT=N: each publisher keeps at most N QoS 1 messages unacknowledged (1: one at a time,
// as many small clients do; then msg/s is set by how soon PUBACKs come)
const INFLIGHT = env("INFLIGHT");
const S4 = `--pub 50 --sub 50 --topic bench/%i --sub-topic bench/%i --qos 1 --size 256 ` +
  `--duration ${SECS} --timeout 60${RATE ? ` --rate ${RATE}` : ""}` +
  (INFLIGHT ? ` --inflight ${INFLIGHT}` : "");
// Placement: the nodes and Redis on CPU 1 as in `make bench-cluster`; REDIS_CPU=0 or B_CPU=0 move
// Redis or node B next to the load generator (how much of the latency is the shared CPU).
const REDIS_CPU = Number(env("REDIS_CPU") ?? 1), B_CPU = Number(env("B_CPU") ?? 1);
const PROF = env("PROF"); // a folder: the nodes write Bun CPU profiles there (markdown too)
if (PROF) {
  for (const b of BROKERS.filter((b) => b.name.startsWith("mqttx-bun"))) {
    const command = b.command;
    b.command = async (port) => {
      const [bun, ...rest] = await command(port);
      return [bun, "--cpu-prof", "--cpu-prof-md", `--cpu-prof-dir=${PROF}`, ...rest];
    };
  }
}
// HOPS=<folder>: the Bun nodes load bench/hop_probe.ts; each run prints where the time went.
const HOPS = env("HOPS");
if (HOPS) {
  await Deno.mkdir(HOPS, { recursive: true });
  for (const b of BROKERS.filter((b) => b.name.startsWith("mqttx-bun"))) {
    const command = b.command;
    b.command = async (port) => {
      const [bun, ...rest] = await command(port);
      // The probe of the build's own checkout: it wraps that checkout's modules.
      const main = rest[0].startsWith("/") ? rest[0] : `${ROOT}/${rest[0]}`;
      const probe = main.replace(/src\/main_bun\.ts$/, "bench/hop_probe.ts");
      return ["env", `HOPS=${HOPS}`, bun, "--preload", probe, ...rest];
    };
  }
}
const loadgen = await buildLoadgen();
const dir = await scratch("cluster-ab-");
// NICE=-10: the nodes, Redis and the load generator at that nice value (root only), so an A/B
// on a host other sessions keep busy measures this pair more than their load; the three keep
// the same weight against each other.
const NICE = env("NICE");
const nice = (cmd: string[]) => NICE ? ["nice", "-n", NICE, ...cmd] : cmd;
async function renice(pids: number[]): Promise<void> {
  if (!NICE) return;
  const tids = pids.flatMap((pid) => [...Deno.readDirSync(`/proc/${pid}/task`)].map((t) => t.name));
  await new Deno.Command("renice", { args: ["-n", NICE, "-p", ...tids], stdout: "null" }).output();
}
// TIMELINE=1: the load generator dumps each delivery (LAT_DUMP); each run prints the p99 of each
// second and in which seconds the run's slowest 1% fell.
const TIMELINE = env("TIMELINE") === "1";
const DUMPS = env("DUMPS"); // a folder: keep the LAT_DUMP files there
if (DUMPS) await Deno.mkdir(DUMPS, { recursive: true });
// WARM=S: before the measured runs, S seconds of S4 flat out on A alone and across (unmeasured),
// as `make bench-cluster` runs S4 before S4-rate200 on the same nodes.
const WARM = env("WARM");
// PERF=<folder>: `perf record -e cpu-clock -g` of nodes A, B and Redis during each measured run
// (the CPU each spends, kernel included; Bun's --cpu-prof counts wall time, preemption too).
const PERF = env("PERF");
if (PERF) await Deno.mkdir(PERF, { recursive: true });
// SCHED=<folder>: `perf record` of every context switch on CPU 1 during each measured run, and
// which thread held the CPU while the slowest 1% waited (bench/stall_blame.ts; implies the dump).
const SCHED = env("SCHED");
if (SCHED) await Deno.mkdir(SCHED, { recursive: true });

/** Per second of the run: its p99 (ms), and how many of the run's slowest 1% were sent in it. */
async function timeline(file: string): Promise<string> {
  const rows = (await Deno.readTextFile(file)).trim().split("\n").map((l) => l.split(" "));
  const t0 = rows.reduce((m, r) => (BigInt(r[0]) < m ? BigInt(r[0]) : m), BigInt(rows[0][0]));
  const secs: number[][] = [];
  for (const [sent, lat] of rows) {
    (secs[Number((BigInt(sent) - t0) / 1_000_000_000n)] ??= []).push(Number(lat) / 1e6);
  }
  const all = rows.map((r) => Number(r[1]) / 1e6).sort((a, b) => a - b);
  const cut = all[Math.floor(all.length * 0.99)];
  const p99 = secs.map((v) => v.sort((a, b) => a - b)[Math.floor(v.length * 0.99)].toFixed(1));
  const slow = secs.map((v) => v.filter((x) => x > cut).length);
  return `  per-second p99 ms: ${p99.join(" ")}\n  slowest 1% (> ${
    cut.toFixed(2)
  } ms) per second: ${slow.join(" ")}; run p99 without the first 2 s ${
    (() => {
      const rest = secs.slice(2).flat().sort((a, b) => a - b);
      return rest[Math.floor(rest.length * 0.99)]?.toFixed(2);
    })()
  } ms`;
}

const ms = (us: number) => (us / 1000).toFixed(2);

/** PUBLISH commands Redis has run (INFO commandstats). */
async function publishes(port: number): Promise<number> {
  const out = await new Deno.Command("redis-cli", {
    args: ["-p", `${port}`, "info", "commandstats"],
    stdout: "piped",
  }).output();
  return Number(
    new TextDecoder().decode(out.stdout).match(/cmdstat_publish:calls=(\d+)/)?.[1] ?? 0,
  );
}

/** Voluntary and forced context switches of each process's main thread (wake-ups, preemptions). */
async function switches(pids: number[]): Promise<number[][]> {
  return await Promise.all(pids.map(async (pid) => {
    const s = await Deno.readTextFile(`/proc/${pid}/status`).catch(() => "");
    const n = (k: string) => Number(s.match(new RegExp(`^${k}:\\s+(\\d+)`, "m"))?.[1] ?? 0);
    // utime and stime (clock ticks, all threads): the user/kernel split of the CPU.
    const st = (await Deno.readTextFile(`/proc/${pid}/stat`).catch(() => "")).split(") ")[1]
      ?.split(" ") ?? [];
    // read and write system calls (all threads): /proc/<pid>/io
    const io = await Deno.readTextFile(`/proc/${pid}/io`).catch(() => "");
    const c = (k: string) => Number(io.match(new RegExp(`^${k}: (\\d+)`, "m"))?.[1] ?? 0);
    return [
      n("voluntary_ctxt_switches"),
      n("nonvoluntary_ctxt_switches"),
      Number(st[11] ?? 0),
      Number(st[12] ?? 0),
      c("syscr"),
      c("syscw"),
    ];
  }));
}

/** CPU ticks (user + system) of each thread of `pid`, summed by thread name. */
async function threads(pid: number): Promise<Map<string, number>> {
  const m = new Map<string, number>();
  for await (const t of Deno.readDir(`/proc/${pid}/task`)) {
    const st = await Deno.readTextFile(`/proc/${pid}/task/${t.name}/stat`).catch(() => "");
    const name = st.slice(st.indexOf("(") + 1, st.lastIndexOf(")"));
    const f = st.slice(st.lastIndexOf(") ") + 2).split(" ");
    m.set(name, (m.get(name) ?? 0) + Number(f[11] ?? 0) + Number(f[12] ?? 0));
  }
  return m;
}

/** What each node's probe recorded in the run just done (µs from the send: p50/p90/p99). */
async function hops(pids: number[]): Promise<string> {
  const parts: string[] = [];
  for (const pid of pids) {
    const before = new Set([...Deno.readDirSync(HOPS!)].map((e) => e.name));
    Deno.kill(pid, "SIGUSR2");
    let file: string | undefined;
    for (let i = 0; i < 50 && !file; i++) {
      await new Promise((r) => setTimeout(r, 20));
      file = [...Deno.readDirSync(HOPS!)].map((e) => e.name)
        .find((n) => n.startsWith(`hops-${pid}-`) && !before.has(n));
    }
    if (!file) continue;
    const h = JSON.parse(await Deno.readTextFile(`${HOPS}/${file}`));
    for (const [k, v] of Object.entries(h) as [string, Record<string, number>][]) {
      parts.push(`${k} ${v.p50}/${v.p90}/${v.p99}`);
    }
  }
  return "  hops µs p50/p90/p99: " + parts.join(", ");
}

for (let round = 0; round < ROUNDS && env("ALONE"); round++) {
  for (const build of BUILDS) {
    for (const cluster of round % 2 ? [true, false] : [false, true]) {
      const redis = await startRedis(dir, 1);
      const a = await startNode(dir, 1, redis.port, "001", cluster, build);
      try {
        const cmd = [loadgen, ...S4.split(" "), "--port", `${a.port}`, "--quiet"];
        const th0 = await threads(a.pid);
        const sw0 = await switches([a.pid, redis.pid]);
        const use = await cpuDuring([a.pid, redis.pid], () => spawnPinned(0, cmd).output());
        const sw1 = await switches([a.pid, redis.pid]);
        const th1 = await threads(a.pid);
        const line = new TextDecoder().decode(use.result.stdout).split("\n")
          .find((l) => l.startsWith("RESULT "));
        if (!line) throw new Error("no RESULT");
        const r = JSON.parse(line.slice(7));
        const total = use.cpu.reduce((x, y) => x + y, 0);
        const sw = sw1.map((x, i) =>
          x.slice(0, 2).map((v, j) => (1000 * (v - sw0[i][j]) / r.recv).toFixed(1)).join("+")
        );
        console.log(
          `${build.padEnd(15)} ${cluster ? "alone" : "plain"} ${
            Math.round(r.recv_window_rate)
          } msg/s ${Math.round(r.recv / total)} msg/CPU-s µs/msg node ${
            (use.cpu[0] / r.recv * 1e6).toFixed(2)
          } redis ${(use.cpu[1] / r.recv * 1e6).toFixed(2)} p99 ${ms(r.lat_us.p99)} ms` +
            ` switches/1000 msg node ${sw[0]} redis ${sw[1]}` +
            `, other load ${((use.machine - total) / use.wall).toFixed(2)} CPU` +
            ` node threads µs/msg ${
              [...th1].map(([k, v]) => [k, (v - (th0.get(k) ?? 0)) * 1e4 / r.recv] as const)
                .filter(([, v]) => v >= 0.05).map(([k, v]) => `${k} ${v.toFixed(2)}`).join(", ")
            }`,
        );
      } finally {
        await stopAll([a, redis]);
      }
    }
  }
}
for (let round = 0; round < ROUNDS && !env("ALONE"); round++) {
  for (const build of BUILDS) {
    const redis = await startRedis(dir, REDIS_CPU);
    const a = await startNode(dir, 1, redis.port, "001", true, build);
    const b = await startNode(dir, B_CPU, redis.port, "002", true, build);
    try {
      await new Promise((r) => setTimeout(r, 1000));
      await renice([a.pid, b.pid, redis.pid]);
      for (const sub of WARM ? [a.port, b.port] : []) {
        const warm = S4.replace(/--duration \d+/, `--duration ${WARM}`).replace(/ --rate \d+/, "");
        const cmd = [loadgen, ...warm.split(" "), "--port", `${a.port}`, "--quiet"];
        await spawnPinned(0, [...cmd, "--sub-port", `${sub}`]).output();
      }
      if (HOPS && WARM) await hops([a.pid, b.pid]); // the warm-up's points are not the run's
      const runs = [["one", [a.port]], ["cross", [a.port, b.port]]] as const;
      for (const [name, ports] of runs.filter(([n]) => !env("ONLY") || env("ONLY") === n)) {
        const dump = `${DUMPS ?? dir}/${build}-${name}-${round}.lat`;
        const cmd = [
          ...(TIMELINE || SCHED ? ["env", `LAT_DUMP=${dump}`] : []),
          loadgen,
          ...S4.split(" "),
          "--port",
          `${ports[0]}`,
          "--quiet",
        ];
        if (ports[1]) cmd.push("--sub-port", `${ports[1]}`);
        const pub0 = await publishes(redis.port);
        const th0 = [await threads(a.pid), await threads(b.pid)];
        const sw0 = await switches([a.pid, b.pid, redis.pid]);
        const perf = PERF
          ? new Deno.Command("perf", {
            args: [
              ..."record -e cpu-clock -F 4000 -g -o".split(" "),
              `${PERF}/${build}-${name}-${round}.data`,
              ...["-p", `${a.pid},${b.pid},${redis.pid}`],
            ],
            stdout: "null",
            stderr: "null",
          }).spawn()
          : undefined;
        const schedData = `${SCHED}/${build}-${name}-${round}.sched`;
        const sched = SCHED
          ? new Deno.Command("perf", {
            args: ["record", "-k", "CLOCK_MONOTONIC", "-e", "sched:sched_switch", "-C", "1"]
              .concat(["-o", schedData]),
            stdout: "null",
            stderr: "null",
          }).spawn()
          : undefined;
        const use = await cpuDuring(
          [a.pid, b.pid, redis.pid],
          () => spawnPinned(0, nice(cmd)).output(),
        );
        for (const p of [perf, sched]) {
          p?.kill("SIGINT");
          await p?.status;
        }
        const text = new TextDecoder().decode(use.result.stdout);
        const line = text.split("\n").find((l) => l.startsWith("RESULT "));
        if (!line) throw new Error(`no RESULT\n${text}`);
        const r = JSON.parse(line.slice(7));
        const frames = await publishes(redis.port) - pub0;
        const sw1 = await switches([a.pid, b.pid, redis.pid]);
        const th1 = [await threads(a.pid), await threads(b.pid)];
        const sw = sw1.map((x, i) =>
          x.slice(0, 2).map((v, j) => (1000 * (v - sw0[i][j]) / r.recv).toFixed(0)).join("+")
        );
        // CPU µs per message of each node's threads (by name), the main thread's and the rest
        const perThread = th1.map((t, i) =>
          [...t].map(([k, v]) => [k, (v - (th0[i].get(k) ?? 0)) * 1e4 / r.recv] as const)
            .filter(([, v]) => v >= 0.05).map(([k, v]) => `${k} ${v.toFixed(1)}`).join(", ")
        );
        // user/kernel µs per message (clock ticks of 10 ms)
        const uk = sw1.map((x, i) =>
          x.slice(2, 4).map((v, j) => ((v - sw0[i][j + 2]) * 1e4 / r.recv).toFixed(1)).join("/")
        );
        const rw = sw1.map((x, i) =>
          x.slice(4).map((v, j) => (1000 * (v - sw0[i][j + 4]) / r.recv).toFixed(0)).join("/")
        );
        const us = use.cpu.map((c) => (c / r.recv * 1e6).toFixed(2));
        const total = use.cpu.reduce((x, y) => x + y, 0);
        console.log(
          `${build.padEnd(15)} ${name.padEnd(5)} recv ${r.recv} ${
            Math.round(r.recv / total)
          } msg/CPU-s` +
            ` µs/msg A ${us[0]} B ${us[1]} redis ${us[2]} total ${
              (total / r.recv * 1e6).toFixed(2)
            }` +
            ` latency ms p50 ${ms(r.lat_us.p50)} p90 ${ms(r.lat_us.p90)} p99 ${ms(r.lat_us.p99)}` +
            ` p99.9 ${ms(r.lat_us.p999)}` +
            `, other load ${((use.machine - total) / use.wall).toFixed(2)} CPU` +
            ` ${(r.recv / Math.max(1, frames)).toFixed(1)} msg/PUBLISH` +
            ` switches per 1000 msg (woke+preempted) A ${sw[0]} B ${sw[1]} redis ${sw[2]}` +
            ` user/kernel µs/msg A ${uk[0]} B ${uk[1]} redis ${uk[2]}` +
            ` reads/writes per 1000 msg A ${rw[0]} B ${rw[1]} redis ${rw[2]}` +
            `${r.lost ? ` lost ${r.lost}` : ""}${r.dup ? ` dup ${r.dup}` : ""}` +
            `\n  threads µs/msg A: ${perThread[0]}; B: ${perThread[1]}`,
        );
        if (TIMELINE) console.log(await timeline(dump));
        if (SCHED) console.log(await blameFiles(schedData, dump));
        if (HOPS) {
          console.log(
            await hops([a.pid, b.pid]),
            `loadgen p50 ${r.lat_us.p50} p99 ${r.lat_us.p99}`,
          );
        }
      }
    } finally {
      await stopAll([a, b, redis]);
    }
  }
}
// KEEP=1: the nodes' and Redis's logs stay (e.g. with BUN_JSC_logGC=1 in the environment).
if (env("KEEP")) console.log(`logs in ${dir}`);
else await Deno.remove(dir, { recursive: true });
