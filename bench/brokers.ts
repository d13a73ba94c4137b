/**
 * The brokers the benchmarks run, and how to start, probe and stop one: shared by
 * bench/run.ts (the scenarios) and bench/slow_subscriber.ts (memory under a slow reader).
 */

export const ROOT = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
export const BUILD = `${ROOT}/bench/.build`;

// ------------------------------------------------------------ brokers

export interface Broker {
  name: string;
  /** Why it cannot run here (and how to get it), or null. */
  missing(): Promise<string | null>;
  /** The command line for a broker listening on 127.0.0.1:port. */
  command(port: number): Promise<string[]>;
  /** Run only when BROKERS names it exactly (variants measuring one feature's cost). */
  optIn?: boolean;
}

export const PATH = [
  `${ROOT}/node_modules/.bin`,
  ...(Deno.env.get("PATH") ?? "").split(":"),
  "/usr/sbin",
];

export async function which(cmd: string): Promise<string | null> {
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
async function mqttxConfig(port: number, httpPort?: number, extra = ""): Promise<string> {
  const path = `${BUILD}/mqttx-${port}.yml`;
  const http = (httpPort ? `  http:\n    enable: true\n    port: ${httpPort}\n` : "") + extra;
  await Deno.writeTextFile(
    path,
    `mqttx:\n  host: 127.0.0.1\n  enable-test-mode: true\n  socket:\n    enable: true\n` +
      `    port: ${port}\n  websocket:\n    enable: false\n  sys-topic:\n    enable: false\n` +
      http,
  );
  return path;
}

/** The HTTP endpoint's port beside a broker on `port` (the *-http variants). */
const httpPortFor = (port: number) => port + 100;

export const BROKERS: Broker[] = [
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
  // Other checkouts' brokers (MQTTX_BASE, MQTTX_BASE2=<folder>), for a same-run A/B against
  // older commits: `git worktree add ../base <commit>` (copy node_modules in: Deno resolves a
  // symlinked one to the other tree), then BROKERS=mqttx-bun,mqttx-bun-base or
  // BROKERS=mqttx-deno,mqttx-deno-base.
  ...(["MQTTX_BASE", "MQTTX_BASE2"] as const).flatMap((key, i): Broker[] => {
    const missing = (bin: string) => () =>
      Deno.env.get(key)
        ? need(bin, "run `npm ci` at the repo root")
        : Promise.resolve(`${key} is not set (a folder with another checkout of mqttx)`);
    const suffix = i === 0 ? "base" : "base2";
    return [{
      name: `mqttx-bun-${suffix}`,
      optIn: true,
      missing: missing("bun"),
      command: async (port) => [
        (await which("bun"))!,
        ...[`${Deno.env.get(key)}/src/main_bun.ts`, "--config", await mqttxConfig(port)],
      ],
    }, {
      name: `mqttx-deno-${suffix}`,
      optIn: true,
      missing: missing("deno"),
      // run from the other checkout, so its deno.json and node_modules are the ones used
      command: async (port) => [
        "bash",
        "-c",
        'cd "$0" && exec "$@"',
        Deno.env.get(key)!,
        (await which("deno"))!,
        ...["run", "-A", "src/main.ts", "--config", await mqttxConfig(port)],
      ],
    }];
  }),
  {
    // Bun on the SQLite store (synchronous full, a fresh file per run): S1 against memory.
    name: "mqttx-bun-sqlite",
    optIn: true,
    missing: () => need("bun", "run `npm ci` at the repo root", "src/main_bun.ts"),
    command: async (port) => {
      const db = `${BUILD}/mqttx-${port}.db`;
      for (const f of [db, `${db}-wal`, `${db}-shm`]) await Deno.remove(f).catch(() => {});
      const store = `  store:\n    type: sqlite\n    path: ${db}\n`;
      return [
        (await which("bun"))!,
        ...["src/main_bun.ts", "--config", await mqttxConfig(port, undefined, store)],
      ];
    },
  },
  {
    // The single binary users download (`make compile-bun`, which `make bench` runs first).
    name: "mqttx-bin",
    missing: () =>
      exists(`${ROOT}/dist/mqttx`).then((ok) =>
        ok ? null : "dist/mqttx not found: run `make compile-bun`"
      ),
    command: async (port) => [`${ROOT}/dist/mqttx`, "--config", await mqttxConfig(port)],
  },
  {
    // The single binary with the HTTP endpoint on and /metrics scraped once a second.
    name: "mqttx-bin-http",
    optIn: true,
    missing: () =>
      exists(`${ROOT}/dist/mqttx`).then((ok) =>
        ok ? null : "dist/mqttx not found: run `make compile-bun`"
      ),
    command: async (port) => [
      `${ROOT}/bench/with_scrape.sh`,
      `${httpPortFor(port)}`,
      `${ROOT}/dist/mqttx`,
      "--config",
      await mqttxConfig(port, httpPortFor(port)),
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

export const live = new Set<Deno.ChildProcess>();
const ULIMIT = 'ulimit -n 20000 2>/dev/null || ulimit -n "$(ulimit -Hn)"';

/** Runs `cmd` pinned to `cpu` with 20000 file descriptors; output to `log`, or piped. */
export function spawnPinned(cpu: number, cmd: string[], log?: string): Deno.ChildProcess {
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
export async function stop(child: Deno.ChildProcess): Promise<void> {
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

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// CONNECT (MQTT 3.1.1, clean session, keep-alive 60, client id "bench-probe") and DISCONNECT
const CONNECT = new Uint8Array([
  ...[0x10, 23, 0, 4, 0x4d, 0x51, 0x54, 0x54, 4, 0x02, 0, 60, 0, 11],
  ...new TextEncoder().encode("bench-probe"),
]);
const DISCONNECT = new Uint8Array([0xe0, 0]);

/** Connects with a raw socket until a CONNACK comes back; resolves with the ms since `t0`. */
export async function firstConnack(
  port: number,
  t0: number,
  exited: () => boolean,
): Promise<number> {
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

export async function portInUse(port: number): Promise<boolean> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port }).catch(() => null);
  conn?.close();
  return conn !== null;
}

export const readProc = (path: string) => Deno.readTextFile(path).catch(() => "");

export async function rssKb(pid: number): Promise<number | null> {
  const m = (await readProc(`/proc/${pid}/status`)).match(/^VmRSS:\s+(\d+)/m);
  return m ? Number(m[1]) : null;
}

/** Clock ticks: the process's user+system, CPU 1's user+nice+system, and CPU 1's total. */
export async function cpuTicks(pid: number) {
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

export async function sh(cmd: string[]): Promise<{ ok: boolean; text: string }> {
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

/**
 * The load generator: the project's own (bench/loadgen, built into bench/.build) unless LOADGEN
 * names another for a cross-check: a binary, or a folder whose Makefile builds one from `BIN=`.
 */
export async function buildLoadgen(): Promise<string> {
  const given = Deno.env.get("LOADGEN")?.trim() || "own";
  if (given === "own") {
    const bin = `${BUILD}/mqttx-loadgen`;
    await Deno.mkdir(BUILD, { recursive: true });
    if (!(await which("cc")) && !(await which("gcc"))) {
      throw new Error("no C compiler to build bench/loadgen: `sudo apt-get install gcc`");
    }
    const out = await sh(["make", "-s", "-C", `${ROOT}/bench/loadgen`, `BIN=${bin}`]);
    if (!out.ok) throw new Error(`cannot build bench/loadgen:\n${out.text}`);
    return bin;
  }
  const dir = given;
  const st = await Deno.stat(dir).catch(() => null);
  if (st?.isFile) return dir;
  if (!st?.isDirectory) {
    throw new Error(`LOADGEN=${given}: ${dir} is neither a binary nor a folder`);
  }
  // the folder may be read-only (CI): build into bench/.build
  const bin = `${BUILD}/mqtt-loadgen-${dir.replace(/\/+$/, "").split("/").pop() || "other"}`;
  const out = await sh(["make", "-s", "-C", dir, `BIN=${bin}`]);
  if (!out.ok) throw new Error(`cannot build the load generator in ${dir}:\n${out.text}`);
  return bin;
}

/**
 * The command line of an A/B variant: a broker of BROKERS, or an entry of EXTRA
 * (`name=command`, `;` between entries) that starts mqttx another way; `{config}` in it is
 * the config file mqttx-bun would get, and its first word is looked up in PATH.
 */
export async function variantCommand(name: string, port: number): Promise<string[]> {
  const b = BROKERS.find((b) => b.name === name);
  if (b) return b.command(port);
  const extra = new Map(
    (Deno.env.get("EXTRA") ?? "").split(";").filter((s) => s.includes("=")).map((s) => {
      const i = s.indexOf("=");
      return [s.slice(0, i).trim(), s.slice(i + 1).trim()];
    }),
  );
  const cmd = extra.get(name);
  if (!cmd) throw new Error(`unknown variant ${name}`);
  const config = (await BROKERS.find((b) => b.name === "mqttx-bun")!.command(port)).at(-1)!;
  const words = cmd.split(/\s+/).map((w) => w.replace("{config}", config));
  words[0] = (await which(words[0])) ?? words[0];
  return words;
}
