/**
 * `make bench`: runs the scenarios of bench/README.md against mqttx (Deno and Bun),
 * Mosquitto and Aedes, a fresh broker per run, and writes bench/results/<date>.{json,md,svg}.
 *
 *   deno run -A bench/run.ts
 *   RUNS=1 SCENARIOS=S1,S3 BROKERS=mqttx-bun,mosquitto deno run -A bench/run.ts
 *
 * Environment: RUNS (3), SCENARIOS, BROKERS (comma lists; "S1" selects S1-qos0/1/2),
 * LOADGEN (default: bench/loadgen; or another generator's binary or source folder),
 * BENCH_PORT (18900),
 * BENCH_OUT (bench/results).
 */
import {
  type BenchFile,
  type LoadgenResult,
  renderMarkdown,
  type RunRecord,
  type ScenarioInfo,
  writeReports,
} from "./report.ts";
import {
  type Broker,
  BROKERS,
  BUILD,
  buildLoadgen,
  cpuTicks,
  firstConnack,
  live,
  portInUse,
  readProc,
  ROOT,
  rssKb,
  sh,
  sleep,
  spawnPinned,
  stop,
} from "./brokers.ts";

const env = (k: string) => Deno.env.get(k)?.trim() || undefined;
const list = (k: string) => env(k)?.split(",").map((s) => s.trim()).filter(Boolean);

// ------------------------------------------------------------ scenarios (README "ready to run")

const S1 = "--pub 1000 --size 1024 --count 100 --timeout 90";
const S2 = "--pub 100 --sub 1 --sub-topic bench/# --size 64 --duration 10 --timeout 60";
const S4 = "--pub 50 --sub 50 --topic bench/%i --sub-topic bench/%i --qos 1 --size 256 " +
  "--duration 10 --timeout 60";
const scenario = (
  id: string,
  title: string,
  args: string,
  metric: ScenarioInfo["metric"],
  warm?: string,
): ScenarioInfo => ({ id, title, args: args.split(" "), metric, warm: warm?.split(" ") });
const SCENARIOS: ScenarioInfo[] = [
  ...[0, 1, 2].map((q) =>
    scenario(
      `S1-qos${q}`,
      `ingest, 1000 publishers × 100 msgs × 1 KiB, qos ${q}, no subscribers`,
      `${S1} --qos ${q}`,
      "pub",
    )
  ),
  ...[0, 1].map((q) =>
    scenario(
      `S2-qos${q}`,
      `fan-in, 100 publishers → 1 subscriber on bench/#, 64 B, qos ${q}, 10 s`,
      `${S2} --qos ${q}`,
      "delivered",
    )
  ),
  scenario(
    "S3",
    "fan-out, 1 publisher → 100 subscribers on one topic, 64 B, qos 0, 10 s",
    "--pub 1 --sub 100 --topic bench/fan --sub-topic bench/fan --qos 0 --size 64 --duration 10 " +
      "--timeout 60",
    "delivered",
  ),
  scenario(
    "S4",
    "1:1 pairs, 50 publishers → 50 subscribers, a topic each, 256 B, qos 1, 10 s, flat out",
    S4,
    "delivered",
  ),
  scenario(
    "S4-rate200",
    "S4 at 200 msg/s per pair (10k msg/s offered): latency without queueing",
    `${S4} --rate 200`,
    "p99",
  ),
  // The same two on a broker that has already carried that load: a JIT runtime's steady
  // state. The fresh-broker rows stay the measure; these say how much of them is the JIT's
  // first seconds (bench/notes/warm_start.md).
  scenario(
    "S1-qos0-warm",
    "S1-qos0 on a broker that has just taken one S1-qos0 burst",
    `${S1} --qos 0`,
    "pub",
    `${S1} --qos 0`,
  ),
  scenario(
    "S4-rate200-warm",
    "S4-rate200 after 3 s of the same load on the same broker",
    `${S4} --rate 200`,
    "p99",
    `${S4} --rate 200`.replace("--duration 10", "--duration 3"),
  ),
  scenario(
    "S5",
    "10,000 idle connections held 5 s: broker VmRSS and KB per connection",
    "--connect-only 10000 --hold 5 --timeout 90",
    "kbPerConn",
  ),
];

const loadavg = async () => Number((await readProc("/proc/loadavg")).split(" ")[0]);

// ------------------------------------------------------------ one run

async function runOnce(
  loadgen: string,
  broker: Broker,
  sc: ScenarioInfo,
  run: number,
  port: number,
): Promise<RunRecord> {
  const log = `${BUILD}/logs/${sc.id}-${broker.name}-${run}`;
  const rec: RunRecord = {
    broker: broker.name,
    scenario: sc.id,
    run,
    status: "failed",
    reason: "",
    exitCode: null,
    port,
    args: [],
    startupMs: null,
    idleRssKb: null,
    cpu1OtherPct: null,
    loadavgBefore: await loadavg(),
    loadavgAfter: NaN,
    wallS: 0,
    log: `${log}.{broker,loadgen}.log`.replace(`${ROOT}/`, ""),
    result: null,
  };
  const t0 = performance.now();
  let child: Deno.ChildProcess | null = null;
  try {
    if (await portInUse(port)) throw new Error(`port ${port} already in use`);
    child = spawnPinned(1, await broker.command(port), `${log}.broker.log`);
    let exited: Deno.CommandStatus | null = null;
    child.status.then((s) => exited = s);
    rec.startupMs = Math.round(await firstConnack(port, t0, () => exited !== null) * 10) / 10;
    await sleep(1000);
    rec.idleRssKb = await rssKb(child.pid);

    if (sc.warm) {
      const warm = await spawnPinned(0, [loadgen, ...sc.warm, "--port", `${port}`]).output();
      if (warm.code !== 0) throw new Error(`the warm-up run failed (exit ${warm.code})`);
      await sleep(500);
    }
    rec.args = [...sc.args, "--port", `${port}`, "--broker-pid", `${child.pid}`];
    const before = await cpuTicks(child.pid);
    const lg = spawnPinned(0, [loadgen, ...rec.args]);
    const limitS = Number(sc.args[sc.args.indexOf("--timeout") + 1]) + 20;
    const guard = setTimeout(() => lg.kill("SIGKILL"), limitS * 1000);
    const out = await lg.output();
    clearTimeout(guard);
    const after = await cpuTicks(child.pid);
    const ticks = after.total - before.total;
    if (ticks > 0 && exited === null) {
      const other = (after.busy - before.busy - (after.broker - before.broker)) / ticks;
      rec.cpu1OtherPct = Math.max(0, Math.round(other * 1000) / 10);
    }
    const decode = (b: Uint8Array) => new TextDecoder().decode(b);
    const text = decode(out.stdout) + decode(out.stderr);
    await Deno.writeTextFile(`${log}.loadgen.log`, text);
    rec.exitCode = out.code;
    const line = text.split("\n").find((l) => l.startsWith("RESULT "));
    rec.result = line ? JSON.parse(line.slice(7)) as LoadgenResult : null;
    [rec.status, rec.reason] = judge(rec.result, out.code, exited);
  } catch (e) {
    rec.reason = e instanceof Error ? e.message : String(e);
  } finally {
    if (child) await stop(child);
    rec.loadavgAfter = await loadavg();
    rec.wallS = Math.round((performance.now() - t0) / 100) / 10;
  }
  return rec;
}

function judge(
  r: LoadgenResult | null,
  code: number,
  exited: Deno.CommandStatus | null,
): [RunRecord["status"], string] {
  if (exited) return ["failed", `broker exited (code ${exited.code}) during the run`];
  if (!r) return ["failed", `no RESULT line (exit ${code})`];
  if (r.timeout) return ["failed", "load generator --timeout hit"];
  if (code === 0) return ["ok", ""];
  const why = ["conn_fail", "sub_fail", "lost", "dup", "dropped", "proto_err"]
    .filter((k) => typeof r[k] === "number" && (r[k] as number) > 0)
    .map((k) => `${k} ${r[k]}`);
  return ["degraded", why.join(" ") || `exit ${code} ${r.last_error ?? ""}`.trim()];
}

function summary(r: RunRecord): string {
  const x = r.result;
  const n = (v: number | undefined) => Math.round(v ?? 0).toLocaleString("en-US");
  const facts = !x
    ? []
    : x.mode === "connect-only"
    ? [`conn ${x.conn_ok}/${x.conn_ok + x.conn_fail}`, `${x.broker_kb_per_conn} KB/conn`]
    : [
      `pub ${n(x.pub_rate)} msg/s`,
      (x.recv_expected ?? 0) > 0 ? `delivered ${n(x.recv_window_rate)} msg/s` : "",
      x.lat_us?.n ? `p99 ${(x.lat_us.p99 / 1000).toFixed(1)} ms` : "",
      `broker cpu ${x.broker_cpu_pct}%`,
    ];
  return [
    r.status + (r.reason ? ` (${r.reason})` : ""),
    ...facts.filter(Boolean),
    `start ${r.startupMs ?? "?"} ms`,
    `other on cpu1 ${r.cpu1OtherPct ?? "?"}%`,
    `${r.wallS} s`,
  ].join(", ");
}

// ------------------------------------------------------------ setup and main loop

async function describeMachine(): Promise<BenchFile["machine"]> {
  const mem = Number((await readProc("/proc/meminfo")).match(/MemTotal:\s+(\d+)/)?.[1] ?? 0);
  return {
    nproc: navigator.hardwareConcurrency,
    cpu: (await readProc("/proc/cpuinfo")).match(/^model name\s*:\s*(.*)$/m)?.[1] ?? "unknown",
    kernel: Deno.osRelease(),
    memGiB: Math.round(mem / 1048576),
  };
}

async function versions(loadgen: string, brokers: string[]): Promise<Record<string, string>> {
  const version = async (...cmd: string[]) =>
    (await sh(cmd)).text.match(/\d+\.\d+(\.\d+)?/)?.[0] ?? "?";
  const rev = (await sh(["git", "rev-parse", "--short", "HEAD"])).text.trim();
  const v: Record<string, string> = { mqttx: `git ${rev} + working tree` };
  if (brokers.includes("mqttx-deno")) v.deno = await version("deno", "--version");
  if (brokers.includes("mqttx-bun")) v.bun = await version("bun", "--version");
  if (brokers.includes("mosquitto")) v.mosquitto = await version("mosquitto", "-h");
  if (brokers.includes("aedes")) {
    const pkg = await Deno.readTextFile(`${ROOT}/bench/node_modules/aedes/package.json`);
    v.aedes = JSON.parse(pkg).version;
    v.node = await version("node", "--version");
  }
  v[loadgen.replace(/^.*\//, "")] = await version(loadgen, "--help");
  return v;
}

/** Items whose key is one of `wanted`, or starts with "<wanted>-" ("S1" selects S1-qos0...). */
function select<T>(all: T[], key: (t: T) => string, wanted?: string[]): T[] {
  if (!wanted) return all;
  const hit = (t: T, w: string) => key(t) === w || key(t).startsWith(`${w}-`);
  const bad = wanted.filter((w) => !all.some((t) => hit(t, w)));
  if (bad.length) throw new Error(`unknown ${bad}; choose from ${all.map(key).join(", ")}`);
  return all.filter((t) => wanted.some((w) => hit(t, w)));
}

async function main() {
  const runs = Number(env("RUNS") ?? 3);
  if (!Number.isInteger(runs) || runs < 1) throw new Error("RUNS must be a whole number >= 1");
  const scenarios = select(SCENARIOS, (s) => s.id, list("SCENARIOS"));
  // Opt-in variants (e.g. mqttx-bin-http) run only when named exactly.
  const wanted = select(BROKERS, (b) => b.name, list("BROKERS"))
    .filter((b) => !b.optIn || list("BROKERS")?.includes(b.name));
  const basePort = Number(env("BENCH_PORT") ?? 18900);
  const outDir = env("BENCH_OUT") ?? `${ROOT}/bench/results`;
  await Deno.mkdir(`${BUILD}/logs`, { recursive: true });
  await Deno.mkdir(outDir, { recursive: true });

  const brokers: Broker[] = [];
  const skipped: BenchFile["skipped"] = [];
  for (const b of wanted) {
    const why = await b.missing();
    if (why) console.log(`skip ${b.name}: ${why}`);
    if (why) skipped.push({ broker: b.name, why });
    else brokers.push(b);
  }
  if (!brokers.length) throw new Error("no broker to run");
  const loadgen = await buildLoadgen();

  const date = new Date().toISOString().slice(0, 16).replace("T", "_").replace(":", "");
  const base = `${outDir}/${date}`;
  const names = brokers.map((b) => b.name);
  const file: BenchFile = {
    date,
    machine: await describeMachine(),
    versions: await versions(loadgen, names),
    runs,
    loadgen: loadgen.replace(/^.*\//, ""),
    brokers: names,
    skipped,
    scenarios,
    records: [],
  };
  const saveJson = () => Deno.writeTextFile(`${base}.json`, JSON.stringify(file, null, 1) + "\n");
  // Ctrl-C: leave no broker or load generator behind, and keep what was measured
  for (const sig of ["SIGINT", "SIGTERM"] as const) {
    Deno.addSignalListener(sig, async () => {
      for (const c of live) c.kill("SIGKILL");
      await saveJson();
      await writeReports(base, file);
      console.log(`\ninterrupted; partial results in ${base}.md`);
      Deno.exit(130);
    });
  }

  const total = scenarios.length * runs * brokers.length;
  console.log(
    `${total} runs: ${names.join(", ")} × ${scenarios.map((s) => s.id).join(", ")} × ${runs}` +
      `; load generator ${loadgen}`,
  );
  let i = 0;
  // within each round the brokers take turns, so drifting background load hits them alike
  for (const sc of scenarios) {
    for (let run = 1; run <= runs; run++) {
      for (const b of brokers) {
        const port = basePort + (i % 50); // a new port each time: no clash with TIME_WAIT sockets
        i++;
        const rec = await runOnce(loadgen, b, sc, run, port);
        file.records.push(rec);
        await saveJson();
        console.log(`[${i}/${total}] ${sc.id} ${b.name} #${run}: ${summary(rec)}`);
        await sleep(500);
      }
    }
  }
  await writeReports(base, file);
  console.log(`\nwrote ${base}.json, .md, .svg\n`);
  console.log(renderMarkdown(file).split("\n## S")[0]);
}

if (import.meta.main) {
  try {
    await main();
  } catch (e) {
    console.error(`bench: ${e instanceof Error ? e.message : e}`);
    Deno.exit(1);
  }
}
