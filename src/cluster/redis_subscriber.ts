/**
 * The Redis bus's subscriptions (frames, broadcasts, control) on a connection of their own,
 * read by a minimal RESP reader: each message is handed to its channel's handler in the turn
 * its bytes arrive, as a view of the bytes read (handlers copy what they keep). Through the
 * client library each frame also went through its general decoder, push-type dispatch and
 * listener tables (bench/notes/cluster_hops.md).
 *
 * One connection carries every channel, so what one node sends on them arrives in the order
 * Redis ran it (a leave after the frames before it). Lost connections are made again after a
 * back-off (50 ms doubling to `maxDelayMs`, with jitter) and every channel subscribed again;
 * `whenReady()` resolves once Redis confirmed them all. Nothing is logged here: the bus's
 * command connection reports Redis's state once per change, as before.
 */
import { Buffer } from "node:buffer";
import type net from "node:net";
import { command, connectRedis } from "./redis_socket.ts";

/** A connection that did not get every subscription confirmed in this time is made again. */
const CONNECT_TIMEOUT_MS = 5_000;

export type ChannelHandler = (payload: Buffer) => void;

export class RedisSubscriber {
  private sock: net.Socket | undefined;
  private readonly handlers = new Map<string, ChannelHandler>();
  /** Confirmations still to come on this connection (AUTH's reply counts as one). */
  private unconfirmed = 0;
  private ready = false;
  private waiters: (() => void)[] = [];
  private delay = 50;
  private retry: ReturnType<typeof setTimeout> | undefined;
  private closed = false;
  /** The unread end of the last chunk (a message split across reads). */
  private rest: Buffer | undefined;
  private readonly items: (Buffer | number | undefined)[] = [];

  constructor(private readonly url: string, private readonly maxDelayMs = 2_000) {}

  get isReady(): boolean {
    return this.ready;
  }

  /** Subscribe `channels`, each message to `handler`; resolves once Redis confirmed them. */
  subscribe(channels: readonly string[], handler: ChannelHandler): Promise<void> {
    const fresh = channels.filter((c) => !this.handlers.has(c));
    for (const c of channels) this.handlers.set(c, handler);
    if (this.sock && fresh.length > 0) this.send(fresh);
    else if (!this.sock && !this.retry) this.connect();
    return this.whenReady();
  }

  /** Resolves once connected with every channel confirmed (at once if so now). */
  whenReady(): Promise<void> {
    if (this.ready || this.closed) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.retry);
    this.sock?.destroy();
    this.sock = undefined;
    this.ready = false;
    for (const w of this.waiters.splice(0)) w();
  }

  private connect(): void {
    this.retry = undefined;
    if (this.closed) return;
    const { socket: s, auth } = connectRedis(this.url);
    this.sock = s;
    this.rest = undefined;
    this.unconfirmed = auth ? 1 : 0;
    this.ready = false;
    this.send([...this.handlers.keys()]);
    const timeout = setTimeout(() => s.destroy(), CONNECT_TIMEOUT_MS);
    s.on("data", (d: Buffer) => this.read(s, d));
    s.on("error", () => {}); // followed by close
    s.on("close", () => {
      clearTimeout(timeout);
      this.lost(s);
    });
    this.waiters.push(() => clearTimeout(timeout));
  }

  private send(channels: string[]): void {
    if (channels.length === 0) return this.confirmed(0);
    this.ready = false;
    this.unconfirmed += channels.length;
    this.sock!.write(command(["SUBSCRIBE", ...channels]));
  }

  private confirmed(n: number): void {
    this.unconfirmed -= n;
    if (this.unconfirmed > 0 || this.ready) return;
    this.ready = true;
    this.delay = 50; // confirmed: back-offs start short again
    for (const w of this.waiters.splice(0)) w();
  }

  private lost(s: net.Socket): void {
    if (this.sock !== s) return; // closed here already
    this.sock = undefined;
    this.ready = false;
    if (this.closed) return;
    const wait = this.delay * (0.75 + Math.random() / 2);
    this.delay = Math.min(this.delay * 2, this.maxDelayMs);
    this.retry = setTimeout(() => this.connect(), wait);
  }

  private read(s: net.Socket, d: Buffer): void {
    const b = this.rest ? Buffer.concat([this.rest, d]) : d;
    this.rest = undefined;
    let at = 0;
    while (at < b.length && this.sock === s) {
      const next = this.value(b, at);
      if (next < 0) {
        this.rest = Buffer.from(b.subarray(at)); // a copy: the chunk is the runtime's
        return;
      }
      at = next;
    }
  }

  /** Handles the reply starting at `at`; its end, or -1 when it is not all here yet. */
  private value(b: Buffer, at: number): number {
    const type = b[at];
    let e = lineEnd(b, at + 1);
    if (e < 0) return -1;
    if (type === 0x2d) { // "-": an error (a refused AUTH, ...): try again later
      this.sock!.destroy();
      return b.length;
    }
    if (type !== 0x2a) { // "+OK" (AUTH), or anything else that is one line
      if (type === 0x2b) this.confirmed(1);
      return e + 2;
    }
    const n = int(b, at + 1, e);
    const items = this.items;
    items.length = 0;
    let q = e + 2;
    for (let i = 0; i < n; i++) {
      if (q >= b.length) return -1;
      e = lineEnd(b, q + 1);
      if (e < 0) return -1;
      if (b[q] !== 0x24) { // ":" an integer (a subscription count)
        items.push(int(b, q + 1, e));
        q = e + 2;
        continue;
      }
      const len = int(b, q + 1, e);
      const start = e + 2, end = start + Math.max(len, 0);
      if (end + 2 > b.length) return -1;
      items.push(len < 0 ? undefined : b.subarray(start, end));
      q = len < 0 ? start : end + 2;
    }
    this.push(items);
    return q;
  }

  /** A push: a message for one of our channels, or a subscription confirmed. */
  private push(items: (Buffer | number | undefined)[]): void {
    const kind = items[0], channel = items[1], payload = items[2];
    if (!(kind instanceof Buffer) || !(channel instanceof Buffer)) return;
    if (kind.length === 7 && kind[0] === 0x6d && payload instanceof Buffer) { // "message"
      const h = this.handlers.get(channel.toString("latin1"));
      if (!h) return;
      try {
        h(payload);
      } catch (e) {
        queueMicrotask(() => { // the rest of the chunk is still read; the error still surfaces
          throw e;
        });
      }
    } else if (kind.length === 9 && kind[0] === 0x73) this.confirmed(1); // "subscribe"
  }
}

/** The index of the "\r" ending the line that starts at `from`, or -1 if not all read. */
function lineEnd(b: Buffer, from: number): number {
  const i = b.indexOf(13, from);
  return i < 0 || i + 1 >= b.length ? -1 : i;
}

function int(b: Buffer, from: number, to: number): number {
  const neg = b[from] === 0x2d;
  let n = 0;
  for (let i = neg ? from + 1 : from; i < to; i++) n = n * 10 + b[i] - 48;
  return neg ? -n : n;
}
