/**
 * The Redis bus's frames (batch.ts) go out on a connection of their own, each PUBLISH written
 * to the socket in the turn that flushes it. Through the client library every PUBLISH cost the
 * sender ~12 µs more CPU (a promise, tracing, its command queue) and waited one more event-loop
 * turn (its writes go out in a setImmediate): at 200 msg/s per publisher a frame carries ~3
 * messages, and each crossing message pays for a frame there and an answer frame back.
 *
 * Fire and forget, as before: while Redis is unreachable a frame is dropped (the QoS 1/2 wait
 * for it times out and the publisher sends again), and the connection is made again at the
 * next frame after a back-off. Each connection starts with [AUTH,] PING and CLIENT REPLY OFF:
 * Redis then answers no PUBLISH, so neither Redis writes nor this node wakes to read a reply
 * per frame (at 200 msg/s per pair a frame carries ~2-3 messages; the others' wake-ups on
 * the shared CPU are what a crossing message's p99 waits for). A Redis that refuses CLIENT
 * REPLY (ACL, proxy) answers every PUBLISH as before. The replies are counted: AUTH, PING,
 * PUBLISH and an error are one line each, so counting '\n' bytes across chunks counts replies,
 * and `settled()` (CLIENT REPLY ON: answered once Redis has taken every frame before it) knows
 * when Redis has taken every frame. An error reply (a refused AUTH, NOAUTH, ...) but CLIENT
 * REPLY's, or PING's by an ACL or while loading, fails the connection: closed, logged once,
 * retried after a back-off, like a lost one.
 */
import { Buffer } from "node:buffer";
import type net from "node:net";
import { command, connectRedis } from "./redis_socket.ts";
import { escapeForLog } from "../log/escape.ts";

/** Frames waiting in the socket beyond this are dropped: Redis stalled; memory stays bounded. */
const MAX_UNSENT = 16 * 1024 * 1024;

/** Written after connecting; a refusal (ACL, proxy) is answered, success is not. */
const REPLY_OFF = command(["CLIENT", "REPLY", "OFF"]);
/** Refusals of the PING that PUBLISH does not meet (Redis 7: PING is not allowed to load). */
const PING_REFUSED = /^-(NOPERM|LOADING)\b/;
/** `settled()`'s marker: answered once every frame before it is taken; then silent again. */
const SYNC = command(["CLIENT", "REPLY", "ON"]) + REPLY_OFF;

export class RedisPublisher {
  private sock: net.Socket | undefined;
  /** Replies expected on this connection so far. */
  private written = 0;
  /** The reply that would be CLIENT REPLY OFF's refusal (its index); -1 once refused. */
  private offAt = 0;
  /** Frames written on this connection, and whether the last is before the last SYNC. */
  private frames = 0;
  private synced = true;
  /** SYNCs written before a refusal of CLIENT REPLY was read: each is refused twice too. */
  private syncs = 0;
  private refusalsOwed = 0;
  /** Logged once: each connection made again (a restart, an idle timeout) is refused again. */
  private replyOffRefused = false;
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
    this.frames++;
    this.synced = false;
    if (this.offAt < 0) this.written++; // replies on: each PUBLISH is answered
    return true;
  }

  /** Redis is reachable again (the bus is back): connect now, not after the back-off. */
  reconnect(): void {
    this.retryAt = 0;
    this.socket();
  }

  /** Resolves once Redis has taken every PUBLISH written so far (or `ms` passed, or it failed). */
  settled(ms = 1_000): Promise<void> {
    if (!this.sock) return Promise.resolve();
    if (!this.synced && this.offAt >= 0) {
      this.sock.write(SYNC);
      this.written++;
      this.syncs++;
    }
    this.synced = true;
    if (this.answered >= this.written) return Promise.resolve();
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
    // AUTH and PING are answered (a PING's PONG is the first sign of a working connection).
    s.write(command(["PING"]) + REPLY_OFF);
    this.written = auth ? 2 : 1;
    this.offAt = this.written;
    this.frames = 0;
    this.synced = true;
    this.syncs = this.refusalsOwed = 0;
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
      if (this.errorLine !== undefined && this.answered - 1 === this.offAt) {
        // CLIENT REPLY OFF refused: every frame written so far (and to come) is answered, and
        // each SYNC written meanwhile by two refusals.
        this.offAt = -1;
        this.written += 1 + this.frames + this.syncs;
        this.refusalsOwed = 2 * this.syncs;
        for (const w of this.waiters) w.upTo = this.written;
        if (this.replyOffRefused) continue;
        this.replyOffRefused = true;
        const why = escapeForLog(this.errorLine.slice(1).trim());
        this.log(`cluster: Redis refused CLIENT REPLY OFF (${why}); frames are answered`);
        continue;
      }
      if (this.answered === this.offAt && PING_REFUSED.test(this.errorLine ?? "")) {
        // PING refused where PUBLISH is not: by an ACL (a user let run only what the bus needs,
        // e.g. +@pubsub), or while Redis loads its dataset. An authenticated connection all the
        // same: the frames go out, as they did before the publisher sent PING.
        this.errorLine = undefined;
      }
      if (this.errorLine !== undefined && this.refusalsOwed > 0) {
        this.refusalsOwed--;
        continue;
      }
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
