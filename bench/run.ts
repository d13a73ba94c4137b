/**
 * `make bench`: runs the scenarios of ../shared/bench/README.md against mqttx (Deno and Bun),
 * Mosquitto and Aedes, a fresh broker per run, and writes bench/results/<date>.{json,md,svg}.
 *
 *   deno run -A bench/run.ts
 *   RUNS=1 SCENARIOS=S1,S3 BROKERS=mqttx-bun,mosquitto deno run -A bench/run.ts
 *
 * Environment: RUNS (3), SCENARIOS, BROKERS (comma lists; "S1" selects S1-qos0/1/2),
 * LOADGEN (mqtt-loadgen binary or its source folder; ../shared/bench), BENCH_PORT (18900),
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

const ROOT = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
const BUILD = `${ROOT}/bench/.build`;
const env = (k: string) => Deno.env.get(k)?.trim() || undefined;
const list = (k: string) => env(k)?.split(",").map((s) => s.trim()).filter(Boolean);

// ------------------------------------------------------------ scenarios (README "ready to run")

const S1 = "--pub 1000 --size 1024 --count 100 --timeout 90";
const S2 = "--pub 100 --sub 1 --sub-topic bench/# --size 64 --duration 10 --timeout 60";
const S4 = "--pub 50 --sub 50 --topic bench/%i --sub-topic bench/%i --qos 1 --size 256 " +
  "--duration 10 --timeout 60";
const scenario = (id: string, title: string, args: string, metric: ScenarioInfo["metric"]) => ({
  id,
  title,
  args: args.split(" "),
  metric,
});
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
  scenario(
    "S5",
    "10,000 idle connections held 5 s: broker VmRSS and KB per connection",
    "--connect-only 10000 --hold 5 --timeout 90",
    "kbPerConn",
  ),
];

// ------------------------------------------------------------ brokers

interface Broker {
  name: string;
  /** Why it cannot run here (and how to get it), or null. */
  missing(): Promise<string | null>;
  /** The command line for a broker listening on 127.0.0.1:port. */
  command(port: number): Promise<string[]>;
}

const PATH = [`${ROOT}/node_modules/.bin`, ...(Deno.env.get("PATH") ?? "").split(":"), "/usr/sbin"];

async function which(cmd: string): Promise<string | null> {
  for (const dir of PATH) {
    const st = await Deno.stat(`${dir}/${cmd}`).catch(() => null);
    if (st?.isFile && ((st.mode ?? 0) & 0o111) !== 0) return `${dir}/${cmd}`;
  }
  return null;
}

const exists = (p: string) => Deno.stat(p).then(() => true, () => false);

async function need(bin: string, hint: string, file?: string, fileHint?: string) {
  if (!(await which(bin))) return `${bin} not found: ${hint}`;
  if (file && !(await exists(`${ROOT}/${file}`))) return `${file} not found${fileHint ?? ""}`;
  return null;
}

/** mqttx defaults, except: in-memory store, plain TCP on 127.0.0.1 only, no $SYS. */
async function mqttxConfig(port: number): Promise<string> {
  const path = `${BUILD}/mqttx-${port}.yml`;
  await Deno.writeTextFile(
    path,
    `mqttx:\n  host: 127.0.0.1\n  enable-test-mode: true\n  socket:\n    enable: true\n` +
      `    port: ${port}\n  websocket:\n    enable: false\n  sys-topic:\n    enable: false\n`,
  );
  return path;
}

const BROKERS: Broker[] = [
  {
    name: "mqttx-deno",
    missing: () => need("deno", "run `npm ci` at the repo root", "src/main.ts"),
    command: async (port) => [
      (await which("deno"))!,
      ...["run", "-A", "src/main.ts", "--config", await mqttxConfig(port)],
    ],
  },
  {
    name: "mqttx-bun",
    missing: () => need("bun", "run `npm ci` at the repo root", "src/main_bun.ts"),
    command: async (port) => [
      (await which("bun"))!,
      ...["src/main_bun.ts", "--config", await mqttxConfig(port)],
    ],
  },
  {
    name: "mosquitto",
    missing: () => need("mosquitto", "`sudo apt-get install mosquitto` (2.0.11 was the baseline)"),
    command: async (port) => {
      const conf = `${BUILD}/mosquitto-${port}.conf`;
      const text = await Deno.readTextFile(`${ROOT}/bench/mosquitto.conf`);
      await Deno.writeTextFile(conf, text.replace(/^listener \d+/m, `listener ${port}`));
      return [(await which("mosquitto"))!, "-c", conf];
    },
  },
  {
    name: "aedes",
    missing: () =>
      need(
        "node",
        "install Node.js (20 was the baseline)",
        "bench/node_modules/aedes/package.json",
        ": `npm install --prefix bench` (aedes 1.2.0, pinned in bench/package.json)",
      ),
    command: async (port) => [(await which("node"))!, "bench/aedes-server.mjs", `${port}`],
  },
];

// ------------------------------------------------------------ processes and probes

const live = new Set<Deno.ChildProcess>();
const ULIMIT = 'ulimit -n 20000 2>/dev/null || ulimit -n "$(ulimit -Hn)"';

/** Runs `cmd` pinned to `cpu` with 20000 file descriptors; output to `log`, or piped. */
function spawnPinned(cpu: number, cmd: string[], log?: string): Deno.ChildProcess {
  const redirect = log ? 'exec >"$BENCH_LOG" 2>&1; ' : "";
  const child = new Deno.Command("bash", {
    // bash and taskset exec, so the child's pid is the broker's (or the load generator's)
    args: ["-c", `${ULIMIT}; ${redirect}exec taskset -c ${cpu} "$@"`, "bench", ...cmd],
    cwd: ROOT,
    env: { BENCH_LOG: log ?? "", PATH: PATH.join(":") },
    stdin: "null",
    stdout: log ? "null" : "piped",
    stderr: log ? "null" : "piped",
  }).spawn();
  live.add(child);
  child.status.finally(() => live.delete(child));
  return child;
}

/** SIGTERM, then SIGKILL if the process is still there after 3 s. */
async function stop(child: Deno.ChildProcess): Promise<void> {
  const kill = (sig: Deno.Signal) => {
    try {
      child.kill(sig);
    } catch { /* already gone */ }
  };
  kill("SIGTERM");
  const timer = setTimeout(() => kill("SIGKILL"), 3000);
  await child.status;
  clearTimeout(timer);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// CONNECT (MQTT 3.1.1, clean session, keep-alive 60, client id "bench-probe") and DISCONNECT
const CONNECT = new Uint8Array([
  ...[0x10, 23, 0, 4, 0x4d, 0x51, 0x54, 0x54, 4, 0x02, 0, 60, 0, 11],
  ...new TextEncoder().encode("bench-probe"),
]);
const DISCONNECT = new Uint8Array([0xe0, 0]);

/** Connects with a raw socket until a CONNACK comes back; resolves with the ms since `t0`. */
async function firstConnack(port: number, t0: number, exited: () => boolean): Promise<number> {
  while (performance.now() < t0 + 30_000) {
    if (exited()) throw new Error("broker exited during start-up (see its log)");
    const conn = await Deno.connect({ hostname: "127.0.0.1", port }).catch(() => null);
    if (!conn) {
      await sleep(5);
      continue;
    }
    const buf = new Uint8Array(4);
    const timer = setTimeout(() => conn.close(), 5000);
    const n = await conn.write(CONNECT).then(() => conn.read(buf)).catch(() => null);
    clearTimeout(timer);
    const t = performance.now() - t0;
    await conn.write(DISCONNECT).catch(() => {});
    try {
      conn.close();
    } catch { /* closed by the timer */ }
    if (n && n >= 2 && buf[0] === 0x20) return t;
    await sleep(20);
  }
  throw new Error("no CONNACK within 30 s");
}

async function portInUse(port: number): Promise<boolean> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port }).catch(() => null);
  conn?.close();
  return conn !== null;
}

const readProc = (path: string) => Deno.readTextFile(path).catch(() => "");

async function rssKb(pid: number): Promise<number | null> {
  const m = (await readProc(`/proc/${pid}/status`)).match(/^VmRSS:\s+(\d+)/m);
  return m ? Number(m[1]) : null;
}

/** Clock ticks: the process's user+system, CPU 1's user+nice+system, and CPU 1's total. */
async function cpuTicks(pid: number) {
  const stat = await readProc(`/proc/${pid}/stat`);
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const cpu1 = ((await readProc("/proc/stat")).match(/^cpu1 (.*)$/m)?.[1] ?? "").trim()
    .split(/\s+/).map(Number);
  return {
    broker: Number(f[11]) + Number(f[12]),
    busy: cpu1[0] + cpu1[1] + cpu1[2],
    total: cpu1.slice(0, 8).reduce((a, b) => a + b, 0), // user..steal
  };
}

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
  if (r.timeout) return ["failed", "mqtt-loadgen --timeout hit"];
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

async function sh(cmd: string[]): Promise<{ ok: boolean; text: string }> {
  try {
    const out = await new Deno.Command(cmd[0], {
      args: cmd.slice(1),
      cwd: ROOT,
      env: { PATH: PATH.join(":") },
      stdin: "null",
    }).output();
    const decode = (b: Uint8Array) => new TextDecoder().decode(b);
    return { ok: out.success, text: decode(out.stdout) + decode(out.stderr) };
  } catch (e) {
    return { ok: false, text: String(e) };
  }
}

/** LOADGEN names the binary itself or the folder with its Makefile (default ../shared/bench). */
async function buildLoadgen(): Promise<string> {
  const given = env("LOADGEN") ?? `${ROOT}/../shared/bench`;
  const st = await Deno.stat(given).catch(() => null);
  if (st?.isFile) return given;
  if (!st?.isDirectory) throw new Error(`LOADGEN=${given} is neither the binary nor its folder`);
  const inPlace = await sh(["make", "-s", "-C", given]);
  if (inPlace.ok) return `${given}/mqtt-loadgen`;
  // shared/ may be read-only (CI): build into bench/.build instead
  const bin = `${BUILD}/mqtt-loadgen`;
  const local = await sh(["make", "-s", "-C", given, `BIN=${bin}`]);
  if (!local.ok) throw new Error(`cannot build mqtt-loadgen:\n${inPlace.text}\n${local.text}`);
  return bin;
}

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
  v["mqtt-loadgen"] = await version(loadgen, "--help");
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
  const wanted = select(BROKERS, (b) => b.name, list("BROKERS"));
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
      `; mqtt-loadgen ${loadgen}`,
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
