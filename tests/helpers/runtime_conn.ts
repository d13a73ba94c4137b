/** Shared pieces of the runtime adapter tests: a listener on the test runtime, a node:net peer, byte patterns. */
import * as net from "node:net";
import { Buffer } from "node:buffer";
import { testRuntime } from "./harness.ts";
import type { Listener, TransportConn as Conn } from "../../src/runtime/types.ts";

export const MB = 1024 * 1024;

/** Deterministic bytes whose position is recoverable, so reordering or loss shows. */
export function pattern(size: number): Uint8Array {
  const out = new Uint8Array(size);
  for (let i = 0; i < size; i++) out[i] = (i * 31 + (i >> 8)) & 0xff;
  return out;
}

export async function serve(onConn: (conn: Conn) => void): Promise<Listener> {
  const runtime = await testRuntime();
  return runtime.listen({ hostname: "127.0.0.1", port: 0 }, onConn);
}

export function connect(port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ port, host: "127.0.0.1" }, () => resolve(s));
    s.once("error", reject);
  });
}

/** Everything the peer sends until it closes. */
export function readAll(s: net.Socket): Promise<Buffer> {
  const parts: Buffer[] = [];
  s.on("data", (d: Buffer) => parts.push(d));
  return new Promise((resolve, reject) => {
    s.once("error", reject);
    s.once("close", () => resolve(Buffer.concat(parts)));
  });
}

/** Connects a peer that reads nothing for 100 ms (the server's send buffer fills), then everything until close. */
export async function readAllLate(port: number): Promise<Buffer> {
  const client = await connect(port);
  client.pause();
  await sleep(100);
  const got = readAll(client);
  client.resume();
  return await got;
}

export async function drainReadable(conn: Conn): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  let size = 0;
  const reader = conn.readable.getReader();
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    parts.push(value);
    size += value.byteLength;
  }
  const out = new Uint8Array(size);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.byteLength;
  }
  return out;
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Everything a started Conn receives, and how often `end` came. */
export function collectCallbacks(conn: Conn, data?: (chunk: Uint8Array) => void | Promise<void>) {
  const chunks: Uint8Array[] = [];
  let ends = 0;
  let resolveEnd!: () => void;
  const ended = new Promise<void>((r) => resolveEnd = r);
  conn.start!({
    data(chunk) {
      chunks.push(chunk);
      return data?.(chunk);
    },
    end() {
      ends++;
      resolveEnd();
    },
  });
  return {
    chunks,
    ended,
    get ends() {
      return ends;
    },
    bytes: () => Buffer.concat(chunks),
  };
}

/** A bounded wait for `p`. */
export function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out: ${what}`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

/** Write everything with Conn.write, waiting whenever it returns a promise. */
export async function writeAll(conn: Conn, data: Uint8Array, piece: number): Promise<number> {
  let waits = 0;
  for (let at = 0; at < data.length; at += piece) {
    const pending = conn.write!(data.subarray(at, at + piece));
    if (pending) {
      waits++;
      await pending;
    }
  }
  return waits;
}
