/**
 * Where a cross-node message's time goes, hop by hop (bench only: a Bun `--preload` that wraps
 * methods of the node's own modules; production code carries nothing of it). cluster_ab.ts
 * loads it with HOPS=<folder>. Every point records, for each load-generator message (its first
 * 8 payload bytes are the CLOCK_MONOTONIC ns it was sent at), the µs from that send, read
 * with clock_gettime(CLOCK_MONOTONIC) through bun:ffi, so the nodes and the load generator use
 * one clock. On SIGUSR2 the node writes `<folder>/hops-<pid>-<n>.json` (p50/p90/p99 per point)
 * and starts again.
 *
 *   route      the node routes the client's PUBLISH (loadgen → read → decode)
 *   sent       node A wrote the frame holding it to Redis (the batcher's turn)
 *   b_data     node B's Redis socket delivered the chunk holding the frame (node:net "data")
 *   b_frame    node-redis handed the frame to the bus (its RESP parsing)
 *   b_routed   node B routed the message to its subscriber's queue (frame decoded)
 *   b_written  node B's socket write of this turn's output returned
 *   written    (one node) the node's output of the PUBLISH's turn was written
 */
// @ts-ignore: Bun's FFI, present only when run by Bun
import { dlopen, ptr } from "bun:ffi";
import net from "node:net";
import { writeFileSync } from "node:fs";
import { Broker } from "../src/broker/broker.ts";
import { ClusterNode } from "../src/cluster/node.ts";
import { RedisBus } from "../src/cluster/redis.ts";
import { RedisPublisher } from "../src/cluster/redis_publisher.ts";
import type { Message } from "../src/broker/message.ts";

const OUT = process.env.HOPS!;
const libc = dlopen("libc.so.6", {
  clock_gettime: { args: ["i32", "ptr"], returns: "i32" },
});
const tsBuf = new BigInt64Array(2);
const tsPtr = ptr(tsBuf);
/** CLOCK_MONOTONIC, ns (as a double: exact to well under a µs for days of uptime). */
function nowNs(): number {
  libc.symbols.clock_gettime(1, tsPtr);
  return Number(tsBuf[0]) * 1e9 + Number(tsBuf[1]);
}

const points = new Map<string, number[]>();
function record(point: string, sentNs: number, atNs = nowNs()): void {
  let a = points.get(point);
  if (!a) points.set(point, a = []);
  if (a.length < 2_000_000) a.push((atNs - sentNs) / 1000);
}
/** The load generator's send time, or undefined for any other payload. */
function sentAt(payload: Uint8Array | undefined): number | undefined {
  if (!payload || payload.length < 24) return undefined;
  const v = new DataView(payload.buffer, payload.byteOffset, 24);
  if (v.getUint32(20, true) === 0) return undefined;
  return Number(v.getBigUint64(0, true));
}

// deno-lint-ignore no-explicit-any
type Any = any;
const wrap = (proto: Any, name: string, f: (orig: Any) => Any) => {
  proto[name] = f(proto[name]);
};

// Node A (or one node): the client's PUBLISH is routed; the frame's write. (publish, not route:
// while no other node has a route the broker calls routeLocal only.)
const unsent: number[] = [];
wrap(Broker.prototype, "publish", (orig) =>
  function (this: Any, m: Message) {
    const ts = sentAt(m.payload);
    const r = orig.call(this, m);
    if (ts !== undefined) {
      record("route", ts);
      if (this.cluster === undefined || unsent.length === 0) {
        queueMicrotask(() => record("written", ts));
      }
    }
    return r;
  });
wrap(ClusterNode.prototype, "forward", (orig) =>
  function (this: Any, m: Message) {
    const n = orig.call(this, m);
    const ts = sentAt(m.payload);
    if (n > 0 && ts !== undefined) unsent.push(ts);
    return n;
  });
wrap(
  RedisPublisher.prototype,
  "publish",
  (orig) =>
    function (this: Any, ch: string, frame: Uint8Array) {
      const r = orig.call(this, ch, frame);
      const t = nowNs();
      for (const ts of unsent) record("sent", ts, t);
      unsent.length = 0;
      return r;
    },
);

// Node B: the Redis socket's chunk, node-redis's hand-over, routing, the subscriber's write.
let dataAt = 0;
const emit = net.Socket.prototype.emit;
net.Socket.prototype.emit = function (this: Any, ev: string, ...args: Any[]) {
  if (ev === "data") dataAt = nowNs();
  return emit.call(this, ev, ...args);
} as Any;
let frameAt = 0;
wrap(RedisBus.prototype, "onBusMessage", (orig) =>
  function (this: Any, b: Uint8Array) {
    frameAt = nowNs();
    return orig.call(this, b);
  });
wrap(ClusterNode.prototype, "received", (orig) =>
  function (this: Any, from: string, msg: Any) {
    const r = orig.call(this, from, msg);
    const ts = msg.kind === "publish" ? sentAt(msg.message.payload) : undefined;
    if (ts !== undefined) {
      record("b_data", ts, dataAt);
      record("b_frame", ts, frameAt);
      record("b_routed", ts);
      queueMicrotask(() => record("b_written", ts));
    }
    return r;
  });

function summary(): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, a] of points) {
    const s = Float64Array.from(a).sort();
    const q = (p: number) => Math.round(s[Math.min(s.length - 1, Math.floor(p * s.length))]);
    out[k] = { n: s.length, p50: q(0.5), p90: q(0.9), p99: q(0.99) };
  }
  return out;
}
/** SIGUSR2 (cluster_ab.ts, after each run): write what this run recorded and start again. */
let dumps = 0;
process.on("SIGUSR2", () => {
  writeFileSync(`${OUT}/hops-${process.pid}-${dumps++}.json`, JSON.stringify(summary()));
  points.clear();
});
