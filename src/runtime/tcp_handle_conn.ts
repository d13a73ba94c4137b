/**
 * A plain TCP connection on Deno as a Conn, straight on node:net's native TCP handle (the
 * `TCPWrap` that node:net's Socket wraps), with no Socket around it.
 *
 * Why: an idle connection's node:net Socket (its Readable and Writable states, listener
 * table and symbols) cost more than the broker's own objects for it; without it an idle
 * connection costs ~1.5 KB less (bench/notes/deno.md, round seven). Input is read into the
 * shared buffer (node_handle_io.ts) only once `start` was called; output goes to the handle
 * as NodeSocketConn's does. The listener is tcp_handles.ts.
 */
import { hostPort, sharedIp } from "./address.ts";
import type { ConnCallbacks, TransportConn } from "./types.ts";
import { connectionChurn } from "./deno_memory.ts";
import { READ_BUFFER, streamBinding, takeRead, writeToHandle } from "./node_handle_io.ts";
import { readableOf, writableOf } from "./callback_streams.ts";

/** What this file uses of the native handle (Deno 2.9's `tcp_wrap` binding). */
export interface TcpHandle {
  readStart(): number;
  readStop(): number;
  useUserBuffer(buffer: Uint8Array): void;
  writeBuffer(req: object, data: Uint8Array): number;
  shutdown(req: { oncomplete(status: number): void }): number;
  close(callback?: () => void): void;
  getpeername(out: { address?: string; port?: number }): number;
  setNoDelay(on: boolean): number;
  onread: ((this: TcpHandle, buffer: ArrayBuffer) => void) | null;
}

const CLOSE_FLUSH_MS = 2000;
const closedError = () => new Error("Cannot write: connection closed");

// state bits
const ENDED = 1; // input ended (EOF, error or close): `end` was called or is due
const SHUT = 2; // our side ended (endWrite)
const CLOSING = 4; // close() waits for kept writes
const CLOSED = 8; // the handle is closed

const CONN = Symbol("TcpHandleConn");
type OwnedHandle = TcpHandle & { [CONN]: TcpHandleConn };

/** The handle's read callback, one for all handles: bytes are in READ_BUFFER. */
function onRead(this: TcpHandle): void {
  const conn = (this as OwnedHandle)[CONN];
  const n = streamBinding()!.streamBaseState[streamBinding()!.kReadBytesOrError];
  if (n > 0) conn.received(takeRead(n));
  else if (n < 0) conn.inputEnded(); // EOF or a read error (reset): the core then closes
}

export class TcpHandleConn implements TransportConn {
  /** The peer's (shared) IP string and its port, joined only when asked. */
  private readonly ip: string;
  private readonly port: number;
  private readonly handle: TcpHandle;
  private sink: ConnCallbacks | undefined = undefined;
  private state = 0;
  /** Pending backpressure pauses (reading resumes when none is left). */
  private paused = 0;
  /** Rejecters of writes the handle kept, made on the first such write. */
  declare private kept?: Set<(e: Error) => void>;
  declare private flushTimer?: ReturnType<typeof setTimeout>;
  declare private streams?: { readable?: ReadableStream<Uint8Array>; writable?: WritableStream };

  constructor(handle: TcpHandle) {
    this.handle = handle;
    const peer: { address?: string; port?: number } = {};
    handle.getpeername(peer);
    this.ip = sharedIp(peer.address ?? "unknown");
    this.port = peer.port ?? 0;
    (handle as OwnedHandle)[CONN] = this;
  }

  get remoteAddr(): string {
    return hostPort(this.ip, this.port);
  }

  start(callbacks: ConnCallbacks): void {
    if (this.sink) throw new Error("Cannot start: the Conn is already read");
    this.sink = callbacks;
    if (this.state & ENDED) return void queueMicrotask(() => callbacks.end());
    const handle = this.handle;
    handle.useUserBuffer(READ_BUFFER);
    handle.onread = onRead;
    handle.readStart();
  }

  /** A chunk for the receiver; a pending promise stops reading until it settles. */
  received(chunk: Uint8Array): void {
    const pending = this.sink!.data(chunk);
    if (!pending) return;
    if (this.paused++ === 0) this.handle.readStop();
    const resume = () => {
      if (--this.paused === 0 && !(this.state & (ENDED | CLOSING | CLOSED))) {
        this.handle.readStart();
      }
    };
    pending.then(resume, resume);
  }

  /** EOF, a read error or the close: the receiver's `end`, once. */
  inputEnded(): void {
    if (this.state & ENDED) return;
    this.state |= ENDED;
    connectionChurn();
    this.sink?.end();
  }

  write(bytes: Uint8Array, length = bytes.byteLength): void | Promise<void> {
    if (this.state & (SHUT | CLOSING | CLOSED)) return Promise.reject(closedError());
    const view = length === bytes.byteLength ? bytes : bytes.subarray(0, length);
    const req: { buffer?: Uint8Array; oncomplete?: (status: number) => void } = {};
    const kept = writeToHandle(this.handle, view, req);
    if (kept === 0) return;
    if (kept < 0) return Promise.reject(closedError());
    // The handle keeps `view` until sent: the caller waits (the Conn contract), no copy.
    const waiting = this.kept ??= new Set();
    return new Promise<void>((resolve, reject) => {
      waiting.add(reject);
      req.oncomplete = (status) => {
        if (!waiting.delete(reject)) return; // already failed by close
        if (status < 0) reject(closedError());
        else resolve();
        if (waiting.size === 0 && this.state & CLOSING) this.closeNow();
      };
    });
  }

  endWrite(): void {
    if (this.state & (SHUT | CLOSING | CLOSED)) return;
    this.state |= SHUT;
    // After the writes already handed over, a FIN.
    this.handle.shutdown({ oncomplete() {} });
  }

  close(): void {
    if (this.state & (CLOSING | CLOSED)) return;
    if (!this.kept?.size) return this.closeNow();
    // Kept writes go out first, but a peer that does not read gets CLOSE_FLUSH_MS.
    this.state |= CLOSING;
    this.handle.readStop();
    this.flushTimer = setTimeout(() => this.closeNow(), CLOSE_FLUSH_MS);
  }

  private closeNow(): void {
    if (this.state & CLOSED) return;
    this.state |= CLOSED;
    if (this.flushTimer !== undefined) clearTimeout(this.flushTimer);
    const kept = this.kept;
    this.kept = undefined;
    kept?.forEach((reject) => reject(closedError()));
    kept?.clear(); // a late completion settles nothing
    this.handle.close(() => this.inputEnded());
  }

  get readable(): ReadableStream<Uint8Array> {
    const streams = this.streams ??= {};
    if (streams.readable) return streams.readable;
    if (this.sink) throw new Error("Cannot read: the Conn was started with callbacks");
    return streams.readable = readableOf(this);
  }

  get writable(): WritableStream<Uint8Array> {
    return (this.streams ??= {}).writable ??= writableOf(this, () => {
      this.endWrite();
      return Promise.resolve();
    });
  }
}
