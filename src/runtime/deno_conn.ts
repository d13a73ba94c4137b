/**
 * A Deno.TcpConn as a Conn, with the callback path (`start` + `write`).
 *
 * Why not just `conn.readable`: Deno's byte stream reads into a fresh 64 KiB
 * buffer every time. An idle client kept one pending (~75 KB RSS each), and
 * at 10k msg/s that external memory made V8 run a full mark-compact about
 * every 80 ms, which showed as latency. The callback path reads with
 * `conn.read(buf)` into a buffer sized from the last read: small (MIN_READ)
 * while the peer is quiet, growing fourfold while reads fill it (a busy
 * publisher) up to MAX_READ, and back down after short reads. The receiver
 * owns each chunk, so every read gets a fresh buffer.
 *
 * `readable`/`writable` stay available (Deno creates them on first use) for
 * code that wants streams; a Conn is read through one path only. Writes go
 * through `conn.write` (looping over short writes); the caller keeps the
 * bytes until the returned promise settles.
 */
import type { ConnCallbacks, TransportConn } from "./types.ts";
import { hostPort } from "./address.ts";

/** The read buffer of a quiet connection: what an idle client costs. */
export const MIN_READ = 512;
export const MAX_READ = 64 * 1024;

/** "ip:port", "[ip6]:port" of a Deno address. */
export function addr(a: Deno.Addr): string {
  if (a.transport !== "tcp" && a.transport !== "udp") return String(a.transport);
  return hostPort(a.hostname, a.port);
}

/** The size of the next read after one that returned `n` bytes into a buffer of `size`. */
export function nextReadSize(size: number, n: number): number {
  if (n >= size) return Math.min(size * 4, MAX_READ);
  // Follow the last read down: a burst that ended must not leave 64 KiB pending.
  let next = MIN_READ;
  while (next < n * 2 && next < size) next *= 2;
  return next;
}

export class DenoConn implements TransportConn {
  readonly remoteAddr: string;
  private readonly conn: Deno.TcpConn;
  private closed = false;
  /** 1: started with callbacks, 2: `readable` handed out. */
  private reading = 0;

  constructor(conn: Deno.TcpConn) {
    this.conn = conn;
    this.remoteAddr = addr(conn.remoteAddr);
    try {
      // MQTT is request/response: Nagle would hold back small packets (acks) for an ack of its own.
      conn.setNoDelay(true);
    } catch { /* the peer may already be gone */ }
  }

  get readable(): ReadableStream<Uint8Array> {
    if (this.reading === 1) {
      throw new Error("Cannot read: the TransportConn was started with callbacks");
    }
    this.reading = 2;
    return this.conn.readable;
  }

  get writable(): WritableStream<Uint8Array> {
    return this.conn.writable;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    try {
      this.conn.close();
    } catch { /* already closed */ }
  }

  endWrite(): void {
    if (this.closed) return;
    this.conn.closeWrite().catch(() => {/* already closed */});
  }

  start(callbacks: ConnCallbacks): void {
    if (this.reading !== 0) throw new Error("Cannot start: the TransportConn is already read");
    this.reading = 1;
    this.readLoop(callbacks);
  }

  private async readLoop(callbacks: ConnCallbacks): Promise<void> {
    const conn = this.conn;
    let size = MIN_READ;
    try {
      while (!this.closed) {
        const buf = new Uint8Array(size);
        const n = await conn.read(buf);
        if (n === null) break;
        size = nextReadSize(size, n);
        if (n === 0) continue;
        const pending = callbacks.data(buf.subarray(0, n));
        if (pending) await pending;
      }
    } catch { /* reset, or closed by us: either way the input ended */ }
    callbacks.end();
  }

  write(bytes: Uint8Array, length = bytes.length): void | Promise<void> {
    if (this.closed) return Promise.reject(new Error("Cannot write: connection closed"));
    return this.writeAll(length === bytes.length ? bytes : bytes.subarray(0, length));
  }

  private async writeAll(bytes: Uint8Array): Promise<void> {
    let at = 0;
    while (at < bytes.length) {
      at += await this.conn.write(at === 0 ? bytes : bytes.subarray(at));
    }
  }
}
