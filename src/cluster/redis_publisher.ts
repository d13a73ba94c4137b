/**
 * The Redis bus's frames (batch.ts) go out on a connection of their own, each PUBLISH written
 * to the socket in the turn that flushes it. Through the client library every PUBLISH cost the
 * sender ~12 µs more CPU (a promise, tracing, its command queue) and waited one more event-loop
 * turn (its writes go out in a setImmediate): at 200 msg/s per publisher a frame carries ~3
 * messages, and each crossing message pays for a frame there and an answer frame back.
 *
 * Fire and forget, as before: while Redis is unreachable a frame is dropped (the QoS 1/2 wait
 * for it times out and the publisher sends again), and the connection is made again at the
 * next frame after a back-off. The replies are counted: PUBLISH (an integer) and AUTH (a
 * simple string) are answered by one line each, and so is an error, so counting '\n' bytes across
 * chunks counts replies, and `settled()` knows when Redis has taken every frame. An error reply
 * (a refused AUTH, NOAUTH, ...) fails the connection: closed, logged once, retried after a
 * back-off, like a lost connection.
 */
import { Buffer } from "node:buffer";
import type net from "node:net";
import { connectRedis } from "./redis_socket.ts";
import { escapeForLog } from "../log/escape.ts";

/** Frames waiting in the socket beyond this are dropped: Redis stalled; memory stays bounded. */
const MAX_UNSENT = 16 * 1024 * 1024;

export class RedisPublisher {
  private sock: net.Socket | undefined;
  private written = 0;
  /** Each channel's "*3 PUBLISH <channel>" part of the command, encoded once. */
  private readonly heads = new Map<string, Buffer>();
  private answered = 0;
  private waiters: { upTo: number; resolve: () => void }[] = [];
  private retryAt = 0;
  private delay = 50;
  private closed = false;
  /** undefined until the first connection answered or failed: only a change is logged. */
  private status: "up" | "unreachable" | "refused" | undefined;
  /** The next byte read starts a reply line; the error reply being read (it may span chunks). */
  private lineStart = true;
  private errorLine: string | undefined;

  constructor(
    private readonly url: string,
    private readonly log: (line: string) => void = () => {},
    private readonly maxDelayMs = 2_000,
  ) {}

  /** PUBLISH `payload` on `channel` now; false when dropped (Redis unreachable or stalled). */
  publish(channel: string, payload: Uint8Array): boolean {
    const s = this.socket();
    if (!s || s.writableLength > MAX_UNSENT) return false;
    // One buffer, one write: five writes under cork() cost ~7 µs more CPU per frame on Bun
    // (its stream machinery; a same-CPU microbench, 21-23 against 14-16 µs per PUBLISH).
    let start = this.heads.get(channel);
    if (!start) {
      const ch = Buffer.from(channel);
      start = Buffer.concat([Buffer.from(`*3\r\n$7\r\nPUBLISH\r\n$${ch.length}\r\n`), ch]);
      if (this.heads.size < 64) this.heads.set(channel, start);
    }
    const len = `\r\n$${payload.length}\r\n`; // ASCII: one byte a character
    const b = Buffer.allocUnsafe(start.length + len.length + payload.length + 2);
    start.copy(b, 0);
    let at = start.length + b.write(len, start.length, "latin1");
    b.set(payload, at);
    at += payload.length;
    b[at] = 13; // "\r\n"
    b[at + 1] = 10;
    s.write(b);
    this.written++;
    return true;
  }

  /** Redis is reachable again (the bus is back): connect now, not after the back-off. */
  reconnect(): void {
    this.retryAt = 0;
    this.socket();
  }

  /** Resolves once Redis answered every PUBLISH written so far (or `ms` passed, or it failed). */
  settled(ms = 1_000): Promise<void> {
    if (this.answered >= this.written || !this.sock) return Promise.resolve();
    return new Promise((resolve) => {
      const t = setTimeout(resolve, ms);
      this.waiters.push({ upTo: this.written, resolve: () => (clearTimeout(t), resolve()) });
    });
  }

  close(): void {
    this.closed = true;
    this.sock?.destroy();
    this.sock = undefined;
  }

  private socket(): net.Socket | undefined {
    if (this.sock || this.closed || Date.now() < this.retryAt) return this.sock;
    const { socket: s, auth } = connectRedis(this.url);
    this.sock = s;
    this.written = auth ? 1 : 0; // AUTH is answered by one line too; written before any frame
    this.answered = 0;
    this.lineStart = true;
    this.errorLine = undefined;
    let why = "connection closed";
    s.on("data", (d: Buffer) => this.answers(s, d));
    s.on("error", (e: Error) => why = e.message); // followed by close
    s.on("close", () => this.lost(s, "unreachable", why));
    return s;
  }

  private answers(s: net.Socket, d: Buffer): void {
    for (let from = 0; from < d.length;) {
      const nl = d.indexOf(10, from);
      const end = nl < 0 ? d.length : nl;
      if (this.lineStart) this.errorLine = d[from] === 0x2d ? "" : undefined; // "-": an error
      if (this.errorLine !== undefined && this.errorLine.length < 200) {
        this.errorLine += d.toString("utf8", from, Math.min(end, from + 200));
      }
      this.lineStart = nl >= 0;
      if (nl < 0) break;
      this.answered++;
      from = nl + 1;
      if (this.errorLine !== undefined) {
        this.lost(s, "refused", "Redis answered " + this.errorLine.slice(1).trim());
        s.destroy();
        return;
      }
      this.state("up");
    }
    while (this.waiters.length > 0 && this.waiters[0].upTo <= this.answered) {
      this.waiters.shift()!.resolve();
    }
  }

  /** `s` failed: frames are dropped until a connection made after the back-off answers. */
  private lost(s: net.Socket, state: "unreachable" | "refused", why: string): void {
    if (this.sock !== s) return; // closed here already, or replaced
    this.sock = undefined;
    this.retryAt = Date.now() + this.delay;
    this.delay = Math.min(this.delay * 2, this.maxDelayMs);
    for (const w of this.waiters.splice(0)) w.resolve();
    this.state(state, why);
  }

  /** Unreachable and refused are told apart: a refusal after a lost connection is logged. */
  private state(state: "up" | "unreachable" | "refused", why = ""): void {
    if (this.status === state) return;
    const first = this.status === undefined;
    this.status = state;
    if (state === "up") this.delay = 50; // answered: back-offs start short again
    if (state !== "up") {
      this.log(`cluster: cannot publish frames on Redis (${escapeForLog(why)}); retrying`);
    } else if (!first) this.log("cluster: publishing frames on Redis again");
  }
}
