/**
 * QoS 0 throughput over ws:// (bench/notes/ws.md): PAIRS publishers each send one PUBLISH per
 * WebSocket message, as MQTT.js does, as fast as their socket takes them, to PAIRS subscribers
 * (one topic each), for SECS seconds. The clients are Bun's own WebSocket client in this
 * process; the broker is a fresh process per run. Prints, per run, messages delivered per
 * second and per broker CPU-second, then the medians per variant.
 *
 *   bun bench/ws_throughput.ts                      # this tree on Bun and Deno, and Mosquitto
 *   MQTTX_BASE=/tmp/base ROUNDS=4 bun bench/ws_throughput.ts   # and another tree, alternating
 *
 * PAIRS (10), SECS (5), ROUNDS (3), SIZE (payload bytes, 64), MOSQUITTO=0 (leave it out).
 */
import { spawn } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import process from "node:process";

const ROOT = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
const env = (k: string, d: string) => process.env[k]?.trim() || d;
const PAIRS = Number(env("PAIRS", "10"));
const SECS = Number(env("SECS", "5"));
const ROUNDS = Number(env("ROUNDS", "3"));
const SIZE = Number(env("SIZE", "64"));
const BIN = `${ROOT}/node_modules/.bin`;
const base = process.env.MQTTX_BASE;

/** mqttx's configuration: ws:// on `port`, MQTT on the next one. */
function mqttxConfig(port: number): string {
  const cfg = `/tmp/mqttx-ws-bench-${port}.yml`;
  writeFileSync(
    cfg,
    `socket:\n  port: ${port + 1}\nwebsocket:\n  enable: true\n  port: ${port}\n  path: /mqtt\n` +
      "sys-topic:\n  enable: false\n",
  );
  return cfg;
}

/**
 * Mosquitto 2.0 with a websockets listener on `port`, and a plain one beside it: 2.0.x does not
 * start with a websockets listener alone (eclipse-mosquitto/mosquitto#2284).
 */
function mosquittoConfig(port: number): string {
  const cfg = `/tmp/mosquitto-ws-bench-${port}.conf`;
  const conf = `listener ${port + 1} 127.0.0.1\nlistener ${port}\nprotocol websockets\n`;
  writeFileSync(cfg, conf + "allow_anonymous true\n");
  return cfg;
}

type Command = (root: string, port: number) => string[];
const bun: Command = (root, port) => [
  `${BIN}/bun`,
  `${root}/src/main_bun.ts`,
  "--config",
  mqttxConfig(port),
];
const deno: Command = (root, port) => [
  `${BIN}/deno`,
  "run",
  "-A",
  `${root}/src/main.ts`,
  "--config",
  mqttxConfig(port),
];
const mosquitto: Command = (_root, port) => ["mosquitto", "-c", mosquittoConfig(port)];
const runs = [
  { name: "mqttx-bun", root: ROOT, cmd: bun },
  { name: "mqttx-deno", root: ROOT, cmd: deno },
  ...(base ? [{ name: "mqttx-bun-base", root: base, cmd: bun }] : []),
  ...(base ? [{ name: "mqttx-deno-base", root: base, cmd: deno }] : []),
  ...(process.env.MOSQUITTO === "0" ? [] : [{ name: "mosquitto", root: "", cmd: mosquitto }]),
];

const enc = new TextEncoder();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const packet = (type: number, body: number[]) => Uint8Array.from([type, body.length, ...body]);
const str = (s: string) => [0, enc.encode(s).length, ...enc.encode(s)];
const connect = (id: string) => packet(0x10, [...str("MQTT"), 4, 2, 0, 60, ...str(id)]);
const subscribe = (t: string) => packet(0x82, [0, 1, ...str(t), 0]);
const publish = (t: string) => packet(0x30, [...str(t), ...new Uint8Array(SIZE)]);

/** Broker CPU so far (user + system), seconds. */
function cpuSeconds(pid: number): number {
  const f = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1].split(" ");
  return (Number(f[11]) + Number(f[12])) / 100;
}

function open(port: number, id: string): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/mqtt`, "mqtt");
    ws.binaryType = "arraybuffer";
    ws.onopen = () => (ws.send(connect(id)), resolve(ws));
    ws.onerror = () => reject(new Error(`ws ${id} failed`));
  });
}

async function once(run: (typeof runs)[number]) {
  const port = 20000 + Math.floor(Math.random() * 20000);
  const [cmd, ...args] = run.cmd(run.root, port);
  const broker = spawn(cmd, args, { stdio: "ignore" });
  try {
    for (let i = 0; i < 100; i++) {
      if (await open(port, "probe").then((ws) => (ws.close(), true), () => false)) break;
      await sleep(100);
    }
    let bytes = 0;
    const clients: WebSocket[] = [];
    for (let i = 0; i < PAIRS; i++) {
      const ws = await open(port, `s${i}`);
      ws.onmessage = (e) => void (bytes += (e.data as ArrayBuffer).byteLength);
      ws.send(subscribe(`t/${i}`));
      clients.push(ws);
    }
    const pubs = await Promise.all(Array.from({ length: PAIRS }, (_, i) => open(port, `p${i}`)));
    clients.push(...pubs);
    await sleep(500);
    let stop = false;
    const frame = publish("t/0"); // every topic t/<digit>: the same length
    const loops = pubs.map(async (ws, i) => {
      const f = publish(`t/${i}`);
      while (!stop) {
        if (ws.bufferedAmount < 256 * 1024) { for (let k = 0; k < 100; k++) ws.send(f); }
        await sleep(0);
      }
    });
    await sleep(500); // warm
    const b0 = bytes, c0 = cpuSeconds(broker.pid!), t0 = performance.now();
    await sleep(SECS * 1000);
    const b1 = bytes, c1 = cpuSeconds(broker.pid!), t1 = performance.now();
    stop = true;
    await Promise.all(loops);
    for (const ws of clients) ws.close();
    const msgs = (b1 - b0) / frame.length;
    return { rate: msgs / ((t1 - t0) / 1000), perCpu: msgs / Math.max(c1 - c0, 0.01) };
  } finally {
    broker.kill("SIGKILL");
  }
}

const results = new Map<string, { rate: number; perCpu: number }[]>();
for (let r = 0; r < ROUNDS; r++) {
  for (const run of r % 2 === 0 ? runs : [...runs].reverse()) {
    const res = await once(run);
    (results.get(run.name) ?? results.set(run.name, []).get(run.name)!).push(res);
    console.log(
      `round ${r + 1} ${run.name}: ${Math.round(res.rate)} msg/s, ` +
        `${Math.round(res.perCpu)} msg per broker CPU-second`,
    );
  }
}
const median = (xs: number[]) => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)];
console.log(`\nmedians (${PAIRS} pairs, ${SIZE}-byte payloads, ${SECS} s, ${ROUNDS} rounds):`);
for (const [name, rs] of results) {
  console.log(
    `  ${name}: ${Math.round(median(rs.map((x) => x.rate)))} msg/s, ` +
      `${Math.round(median(rs.map((x) => x.perCpu)))} msg per broker CPU-second`,
  );
}
process.exit(0);
