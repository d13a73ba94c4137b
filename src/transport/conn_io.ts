/**
 * A Conn read by pulling and written by awaiting, through whichever path it
 * offers: the callback path (no stream objects, the adapter's small read
 * buffers: an idle Deno socket holds 512 B instead of a 64 KiB stream read)
 * or the Web streams. Reads are pulled: while a chunk waits for `read()`, the
 * adapter is paused, so a slow consumer holds the peer back through TCP.
 * Runtime-free.
 */
import type { TransportConn } from "../runtime/types.ts";

/** See `behind`: as the broker's own output bound (READ_PAUSE_BYTES), in writes and bytes. */
const MAX_UNSETTLED = 64;
const MAX_UNSETTLED_BYTES = 1024 * 1024;

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
  /** Writes go out one after another; the last one, settled or not. */
  private lastWrite: Promise<void> = Promise.resolve();
  /** Writes not settled yet, and their bytes. */
  private unsettled = 0;
  private unsettledBytes = 0;

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
    const next = this.writer
      ? this.writer.write(bytes)
      : this.lastWrite.then(() => this.conn.write!(bytes));
    this.unsettled++;
    this.unsettledBytes += bytes.length;
    this.lastWrite = next.then(() => this.settled(bytes), () => this.settled(bytes));
    return next;
  }

  /**
   * The peer is behind reading what was written to it: writes the reader makes by itself (a
   * pong per ping) wait for `written()` before it reads on, so a peer that sends and never
   * reads holds only this much here.
   */
  get behind(): boolean {
    return this.unsettled > MAX_UNSETTLED || this.unsettledBytes > MAX_UNSETTLED_BYTES;
  }

  /** Settles once every write so far has settled. */
  written(): Promise<void> {
    return this.lastWrite;
  }

  private settled(bytes: Uint8Array): void {
    this.unsettled--;
    this.unsettledBytes -= bytes.length;
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
