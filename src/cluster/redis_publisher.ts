/**
 * The Redis bus's frames (batch.ts) go out on a connection of their own, each PUBLISH written
 * to the socket in the turn that flushes it. Through the client library every PUBLISH cost the
 * sender ~12 µs more CPU (a promise, tracing, its command queue) and waited one more event-loop
 * turn (its writes go out in a setImmediate): at 200 msg/s per publisher a frame carries ~3
 * messages, and each crossing message pays for a frame there and an answer frame back.
 *
 * Fire and forget, as before: while Redis is unreachable a frame is dropped (the QoS 1/2 wait
 * for it times out and the publisher sends again), and the connection is made again at the
 * next frame after a back-off. The replies are counted, not read: each PUBLISH (and the AUTH
 * before them) is answered by one line, so `settled()` knows when Redis has taken every frame.
 */
import { Buffer } from "node:buffer";
import net from "node:net";
import tls from "node:tls";

/** Frames waiting in the socket beyond this are dropped: Redis stalled; memory stays bounded. */
const MAX_UNSENT = 16 * 1024 * 1024;

export class RedisPublisher {
  private sock: net.Socket | undefined;
  private written = 0;
  private answered = 0;
  private waiters: { upTo: number; resolve: () => void }[] = [];
  private retryAt = 0;
  private delay = 50;
  private closed = false;

  constructor(private readonly url: string, private readonly maxDelayMs = 2_000) {}

  /** PUBLISH `payload` on `channel` now; false when dropped (Redis unreachable or stalled). */
  publish(channel: string, payload: Uint8Array): boolean {
    const s = this.socket();
    if (!s || s.writableLength > MAX_UNSENT) return false;
    const ch = Buffer.from(channel);
    s.cork();
    s.write(`*3\r\n$7\r\nPUBLISH\r\n$${ch.length}\r\n`);
    s.write(ch);
    s.write(`\r\n$${payload.length}\r\n`);
    s.write(payload);
    s.write("\r\n");
    s.uncork();
    this.written++;
    return true;
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
    const u = new URL(this.url);
    const port = Number(u.port || 6379);
    const host = u.hostname.replace(/^\[(.*)\]$/, "$1");
    const s = u.protocol === "rediss:"
      ? tls.connect({ host, port, servername: net.isIP(host) ? undefined : host })
      : net.connect(port, host);
    s.setNoDelay(true);
    this.sock = s;
    this.written = this.answered = 0;
    if (u.password) { // answered by one line too; written before any frame
      const user = decodeURIComponent(u.username);
      const auth = ["AUTH", ...(user ? [user] : []), decodeURIComponent(u.password)];
      s.write(
        `*${auth.length}\r\n` + auth.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join(""),
      );
      this.written++;
    }
    s.on(u.protocol === "rediss:" ? "secureConnect" : "connect", () => this.delay = 50);
    s.on("data", (d: Buffer) => this.answers(d));
    s.on("error", () => {}); // followed by close
    s.on("close", () => {
      if (this.sock !== s) return;
      this.sock = undefined;
      this.retryAt = Date.now() + this.delay;
      this.delay = Math.min(this.delay * 2, this.maxDelayMs);
      for (const w of this.waiters.splice(0)) w.resolve();
    });
    return s;
  }

  private answers(d: Buffer): void {
    for (let i = d.indexOf(10); i >= 0; i = d.indexOf(10, i + 1)) this.answered++;
    while (this.waiters.length > 0 && this.waiters[0].upTo <= this.answered) {
      this.waiters.shift()!.resolve();
    }
  }
}
