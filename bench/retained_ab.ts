/**
 * Same-minute A/B of retained publishes on one cluster node (`cluster.enable`, no peer; Redis
 * store): for each build in BROKERS (default mqttx-bun,mqttx-bun-base; MQTTX_BASE=<another
 * checkout>), a redis-server and the node pinned to CPU 1, and one client here publishing QoS 1
 * retained messages (64 bytes, TOPICS topics in turn, WINDOW unacknowledged at most) for SECS
 * seconds, ROUNDS times alternating builds. Prints retained messages per CPU-second of the node,
 * and of the node and Redis together. The load generator has no retained publishes (README).
 *
 *   MQTTX_BASE=/tmp/base ROUNDS=3 taskset -c 0 deno run -A bench/retained_ab.ts
 */
import { cpuDuring, scratch, startNode, startRedis, stopAll } from "./cluster_nodes.ts";

const env = (k: string) => Deno.env.get(k)?.trim() || undefined;
const BUILDS = (env("BROKERS") ?? "mqttx-bun,mqttx-bun-base").split(",");
const ROUNDS = Number(env("ROUNDS") ?? 3);
const SECS = Number(env("SECS") ?? 5);
const TOPICS = Number(env("TOPICS") ?? 1000);
const WINDOW = Number(env("WINDOW") ?? 200);

const enc = new TextEncoder();

function varint(n: number): number[] {
  const out: number[] = [];
  do {
    let b = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) b |= 128;
    out.push(b);
  } while (n > 0);
  return out;
}

function packet(header: number, body: number[]): Uint8Array {
  return Uint8Array.from([header, ...varint(body.length), ...body]);
}

const str = (s: string) => {
  const b = [...enc.encode(s)];
  return [b.length >> 8, b.length & 255, ...b];
};

/** PUBLISH QoS 1, RETAIN, to topic `i`, packet id `id`. */
function retainedPublish(i: number, id: number): Uint8Array {
  return packet(0x33, [...str(`bench/r/${i}`), id >> 8, id & 255, ...new Array(64).fill(120)]);
}

/** Publish for `secs` seconds; returns the PUBACKs received. */
async function publishFor(port: number, secs: number): Promise<number> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const w = conn.writable.getWriter();
  const id = `retained-ab-${crypto.randomUUID()}`;
  await w.write(packet(0x10, [...str("MQTT"), 4, 2, 0, 60, ...str(id)]));
  const connack = new Uint8Array(4);
  for (let got = 0; got < 4;) {
    const n = await conn.read(connack.subarray(got));
    if (n === null) throw new Error("closed before CONNACK");
    got += n;
  }
  let acked = 0, sent = 0, wanted = 0;
  const end = performance.now() + secs * 1000;
  const send = async () => {
    const parts: Uint8Array[] = [];
    while (sent - acked < WINDOW && performance.now() < end) {
      parts.push(retainedPublish(sent % TOPICS, (sent % 65535) + 1));
      sent++;
    }
    if (parts.length) await w.write(concat(parts));
  };
  await send();
  let pending = new Uint8Array(0);
  for await (const chunk of conn.readable) {
    const buf = concat([pending, chunk]);
    let i = 0;
    for (; i + 4 <= buf.length; i += 4) if (buf[i] === 0x40) acked++;
    pending = buf.slice(i);
    if (performance.now() >= end) {
      wanted = sent;
      if (acked >= wanted) break;
    } else await send();
  }
  try {
    conn.close();
  } catch { /* closed */ }
  if (acked < wanted || wanted === 0) throw new Error(`closed early: ${acked} of ${sent} acked`);
  return acked;
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) (out.set(p, at), at += p.length);
  return out;
}

const dir = await scratch("retained-ab-");
const rows: string[] = [];
for (let round = 0; round < ROUNDS; round++) {
  for (const build of BUILDS) {
    const redis = await startRedis(dir, 1);
    const node = await startNode(dir, 1, redis.port, "001", true, build);
    try {
      await publishFor(node.port, 1); // warm-up
      const use = await cpuDuring([node.pid, redis.pid], () => publishFor(node.port, SECS));
      const n = use.result;
      const [nodeCpu, redisCpu] = use.cpu;
      const row = `${round} ${build.padEnd(15)} ${(n / use.wall).toFixed(0).padStart(7)} msg/s ` +
        `${(n / nodeCpu).toFixed(0).padStart(7)} msg/node-CPU-s ` +
        `${(n / (nodeCpu + redisCpu)).toFixed(0).padStart(7)} msg/(node+redis)-CPU-s ` +
        `machine busy ${(use.machine / use.wall).toFixed(2)} CPUs`;
      console.log(row);
      rows.push(row);
    } finally {
      await stopAll([node, redis]);
    }
  }
}
