/**
 * `make fuzz`: a stateful fuzzer against a real broker process. Each round runs
 * FUZZ_CLIENTS chaos connections (random valid and invalid packet sequences,
 * tests/fuzz/chaos.ts) while a well-behaved pair exchanges numbered QoS 1
 * messages (good_pair.ts); after each round it checks that the broker process is
 * alive, its RSS is under FUZZ_MAX_RSS_MB, and the pair got exactly its messages
 * at no less than FUZZ_MIN_RATIO of the rate it has right after, with the chaos gone
 * (measured each round: the machine is shared and its speed varies).
 *
 *   FUZZ_SECONDS=60 FUZZ_RUNTIME=deno|bun FUZZ_SEED=n FUZZ_CLIENTS=40 deno run -A tests/fuzz/fuzz.ts
 *
 * Flooding clients send FUZZ_FLOOD_RATE messages a second each (default 5000; 0 = as fast as
 * the socket takes them, which makes the broker's CPU the limit and the ratio meaningless).
 *
 * Exits 1 on the first broken invariant, naming the round and the seed.
 */
import { type ChildProcess, spawn } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import process from "node:process";
import { type ChaosStats, newChaosStats, Rng } from "./chaos.ts";
import { type PairResult, runGoodPair } from "./good_pair.ts";

const env = (k: string, d: number) => Number(process.env[k] ?? d);
const SECONDS = env("FUZZ_SECONDS", 60);
const CLIENTS = env("FUZZ_CLIENTS", 40);
const ROUND_MS = env("FUZZ_ROUND_MS", 3000);
const MAX_RSS_MB = env("FUZZ_MAX_RSS_MB", 400);
const MIN_RATIO = env("FUZZ_MIN_RATIO", 0.1);
const PAIR_MESSAGES = env("FUZZ_PAIR_MESSAGES", 1000);
const SEED = env("FUZZ_SEED", Math.floor(Math.random() * 2 ** 31));
const RUNTIME = process.env.FUZZ_RUNTIME ?? "deno";
const ROOT = path.resolve(path.dirname(new URL(import.meta.url).pathname), "../..");

const CONFIG = `mqttx:
  host: 127.0.0.1
  socket: { port: 0 }
  max-bytes-in-message: 65536
  max-inflight: 50
  max-queued-messages: 500
  sys-topic: { enable: true, interval: 1s }
  acl:
    enable: true
    default-policy: allow
    rules:
      - { permission: deny, action: subscribe, topic: fz/secret/# }
`;

interface Broker {
  child: ChildProcess;
  port: number;
  logLines: string[];
}

function startBroker(): Promise<Broker> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "mqttx-fuzz-"));
  const config = path.join(dir, "fuzz.yml");
  fs.writeFileSync(config, CONFIG);
  const cmd = RUNTIME === "bun"
    ? ["bun", [path.join(ROOT, "src/main_bun.ts"), "--config", config]]
    : ["deno", ["run", "-A", path.join(ROOT, "src/main.ts"), "--config", config]];
  const child = spawn(cmd[0] as string, cmd[1] as string[], {
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, PATH: `${process.env.PATH}:${ROOT}/node_modules/.bin` },
  });
  const logLines: string[] = [];
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("broker did not start")), 30_000);
    const onLine = (chunk: Buffer) => {
      for (const line of chunk.toString().split("\n")) {
        if (!line) continue;
        if (logLines.length < 100_000) logLines.push(line);
        const m = line.match(/listening on mqtt:\/\/[^:]+:(\d+)/);
        if (m) {
          clearTimeout(timer);
          resolve({ child, port: Number(m[1]), logLines });
        }
      }
    };
    child.stdout!.on("data", onLine);
    child.stderr!.on("data", onLine);
    child.once("exit", (code) => reject(new Error(`broker exited (${code}) before listening`)));
  });
}

/** Resident set size of a process, MB (Linux /proc). */
function rssMb(pid: number): number {
  const status = fs.readFileSync(`/proc/${pid}/status`, "utf8");
  const kb = Number(status.match(/VmRSS:\s+(\d+)/)?.[1] ?? 0);
  return Math.round(kb / 1024);
}

function alive(b: Broker): boolean {
  return b.child.exitCode === null && b.child.signalCode === null;
}

/** The good pair, run again and again until `until`: one rate over all its runs. */
async function pairUntil(port: number, until: number): Promise<PairResult> {
  let messages = 0, ms = 0;
  do {
    const r = await runGoodPair(port, PAIR_MESSAGES, ROUND_MS + 20_000);
    if (!r.ok) return r;
    messages += r.messages;
    ms += r.ms;
  } while (Date.now() < until);
  return { ok: true, messages, ms, rate: Math.round((messages * 1000) / ms) };
}

const worker = new Worker(new URL("./chaos_worker.ts", import.meta.url), { type: "module" });

/** One round: chaos in the worker, the good pair here, both until the round ends. */
async function round(b: Broker, rng: Rng, total: ChaosStats): Promise<PairResult> {
  const until = Date.now() + ROUND_MS;
  const chaos = new Promise<ChaosStats>((resolve) => {
    worker.onmessage = (e: MessageEvent<ChaosStats>) => resolve(e.data);
  });
  worker.postMessage({ port: b.port, seed: rng.int(2 ** 31), clients: CLIENTS, until });
  const pair = await pairUntil(b.port, until);
  const s = await chaos;
  total.connections += s.connections;
  total.packets += s.packets;
  total.bytesSent += s.bytesSent;
  total.bytesReceived += s.bytesReceived;
  for (const [k, v] of Object.entries(s.scripts)) total.scripts[k] = (total.scripts[k] ?? 0) + v;
  return pair;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] ?? 0;
}

async function main(): Promise<number> {
  console.log(
    `fuzz: ${SECONDS}s on ${RUNTIME}, seed ${SEED}, ${CLIENTS} chaos clients per ${ROUND_MS} ms round`,
  );
  const b = await startBroker();
  const rng = new Rng(SEED);
  const stats = newChaosStats();
  const rates: number[] = [];
  const ratios: number[] = [];
  const rss: number[] = [];
  let failure: string | undefined;
  try {
    // Baseline: the pair alone, three times (the best counts: the machine is shared).
    const base: number[] = [];
    for (let i = 0; i < 3; i++) {
      const r = await pairUntil(b.port, Date.now() + 1000);
      if (!r.ok) throw new Error(`baseline pair failed: ${r.error}`);
      base.push(r.rate);
    }
    const baseline = Math.max(...base);
    console.log(`baseline: ${baseline} msg/s, RSS ${rssMb(b.child.pid!)} MB`);
    const end = Date.now() + SECONDS * 1000;
    let n = 0;
    while (Date.now() < end && !failure) {
      n++;
      const pair = await round(b, rng, stats);
      await new Promise((r) => setTimeout(r, 300)); // let closes settle
      if (!alive(b)) {
        failure = `round ${n}: the broker process exited (${
          b.child.exitCode ?? b.child.signalCode
        })`;
        break;
      }
      const mb = rssMb(b.child.pid!);
      rss.push(mb);
      // The same pair with the chaos gone: the broker recovered, and the reference rate now.
      const quiet = await pairUntil(b.port, Date.now() + 500);
      const ratio = pair.ok && quiet.ok ? pair.rate / quiet.rate : 0;
      if (pair.ok) ratios.push(ratio);
      rates.push(pair.rate);
      console.log(
        `round ${n}: pair ${pair.ok ? `${pair.rate} msg/s` : `FAILED (${pair.error})`}, ` +
          `alone ${quiet.ok ? `${quiet.rate} msg/s` : `FAILED (${quiet.error})`}, ` +
          `ratio ${ratio.toFixed(2)}, RSS ${mb} MB, ${stats.connections} chaos connections so far`,
      );
      if (!pair.ok) failure = `round ${n}: the well-behaved pair: ${pair.error}`;
      else if (!quiet.ok) failure = `round ${n}: the pair after the chaos: ${quiet.error}`;
      else if (ratio < MIN_RATIO) {
        failure = `round ${n}: pair throughput ${pair.rate} msg/s under chaos, ` +
          `< ${MIN_RATIO} x ${quiet.rate} msg/s alone`;
      } else if (mb > MAX_RSS_MB) failure = `round ${n}: RSS ${mb} MB > ${MAX_RSS_MB} MB`;
    }
    console.log(
      `\nrounds ${n}, chaos connections ${stats.connections}, packets ${stats.packets}, ` +
        `sent ${(stats.bytesSent / 1e6).toFixed(1)} MB, received ${
          (stats.bytesReceived / 1e6).toFixed(1)
        } MB`,
    );
    console.log(`scripts: ${JSON.stringify(stats.scripts)}`);
    console.log(
      `pair: baseline ${baseline} msg/s; under chaos min ${Math.min(...rates)}, median ${
        median(rates)
      } msg/s; ratio to the pair alone min ${Math.min(...ratios).toFixed(2)}, median ${
        median(ratios).toFixed(2)
      }; broker RSS max ${Math.max(...rss)} MB, last ${rss.at(-1)} MB`,
    );
    console.log(`broker log lines: ${b.logLines.length}; a sample of reasons:`);
    const reasons = new Map<string, number>();
    for (const l of b.logLines) {
      const key = l.replace(/\d+(\.\d+)*/g, "N").replace(/client \S+/g, "client X").slice(0, 90);
      reasons.set(key, (reasons.get(key) ?? 0) + 1);
    }
    for (const [k, v] of [...reasons].sort((a, b) => b[1] - a[1]).slice(0, 12)) {
      console.log(`  ${String(v).padStart(6)}  ${k}`);
    }
  } catch (e) {
    failure = String(e);
  } finally {
    b.child.kill("SIGTERM");
    worker.terminate();
  }
  if (failure) {
    console.log(`\nFUZZ FAILED: ${failure} (FUZZ_SEED=${SEED} FUZZ_RUNTIME=${RUNTIME})`);
    return 1;
  }
  console.log("\nfuzz: every invariant held");
  return 0;
}

process.exit(await main());
