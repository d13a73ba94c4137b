/**
 * A Conn read by pulling and written by awaiting, through whichever path it
 * offers: the callback path (no stream objects, the adapter's small read
 * buffers: an idle Deno socket holds 512 B instead of a 64 KiB stream read)
 * or the Web streams. Reads are pulled: while a chunk waits for `read()`, the
 * adapter is paused, so a slow consumer holds the peer back through TCP.
 * Runtime-free.
 */
import type { TransportConn } from "../runtime/types.ts";

export class ConnIo {
  private readonly conn: TransportConn;
  /** Streams path only. */
  private reader: ReadableStreamDefaultReader<Uint8Array> | undefined;
  private writer: WritableStreamDefaultWriter<Uint8Array> | undefined;
  /** Callback path: the chunk not yet read, the read waiting for one, the adapter waiting. */
  private held: Uint8Array | undefined;
  private waiting: ((chunk: Uint8Array | undefined) => void) | undefined;
  private resume: (() => void) | undefined;
  private ended = false;
  /** Callback path: writes go out one after another. */
  private lastWrite: Promise<void> = Promise.resolve();

  constructor(conn: TransportConn) {
    this.conn = conn;
    if (conn.start && conn.write) {
      conn.start({ data: (chunk) => this.onData(chunk), end: () => this.onEnd() });
    } else {
      this.reader = conn.readable.getReader();
      this.writer = conn.writable.getWriter();
    }
  }

  /** The next chunk, or undefined once the input ended (or failed). */
  read(): Promise<Uint8Array | undefined> {
    if (this.reader) {
      return this.reader.read().then((r) => (r.done ? undefined : r.value), () => undefined);
    }
    const chunk = this.held;
    if (chunk) {
      this.held = undefined;
      const resume = this.resume;
      this.resume = undefined;
      resume?.();
      return Promise.resolve(chunk);
    }
    if (this.ended) return Promise.resolve(undefined);
    return new Promise((resolve) => (this.waiting = resolve));
  }

  write(bytes: Uint8Array): Promise<void> {
    if (this.writer) return this.writer.write(bytes);
    const next = this.lastWrite.then(() => this.conn.write!(bytes));
    this.lastWrite = next.catch(() => {});
    return next;
  }

  /** Settles once what was written went out (or could not). */
  flush(): Promise<void> {
    return this.writer ? this.writer.close().catch(() => {}) : this.lastWrite;
  }

  private onData(chunk: Uint8Array): void | Promise<void> {
    const waiting = this.waiting;
    if (waiting) {
      this.waiting = undefined;
      waiting(chunk);
      return;
    }
    this.held = chunk;
    return new Promise((resolve) => (this.resume = resolve));
  }

  private onEnd(): void {
    this.ended = true;
    const waiting = this.waiting;
    this.waiting = undefined;
    waiting?.(undefined);
  }
}
