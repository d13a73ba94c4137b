/**
 * A `node:net`/`node:tls` socket (as Deno provides them) as a Conn: the callback path
 * (`start` + `write`) that the broker uses, and Web streams built on it when asked for.
 *
 * Input: chunks go to the receiver (plain TCP: copies out of one shared read buffer, see
 * node_handle_io.ts; TLS: `data` events); while its returned promise is pending the socket is
 * paused (backpressure). Output, plain TCP: straight to the socket's handle, a promise when
 * the handle kept the bytes; TLS: the socket gets a copy, and a write returns nothing while
 * the socket's own buffer is under its high-water mark, else a promise that settles on
 * `drain`. Plain TCP listens with `allowHalfOpen`, so output still flows after the peer
 * ended its side; `close()` ends both.
 */
import type { Socket } from "node:net";
import { Buffer } from "node:buffer";
import { hostPort, sharedIp } from "./address.ts";
import type { ConnCallbacks, TransportConn } from "./types.ts";
import { connectionChurn } from "./deno_memory.ts";
import { readableOf, writableOf } from "./callback_streams.ts";
import { directHandle, readIntoShared, takeRead, writeToHandle } from "./node_handle_io.ts";

const CLOSE_FLUSH_MS = 2000;
const closedError = () => new Error("Cannot write: connection closed");

// Listeners shared by all sockets (EventEmitter calls them with `this` = the socket): an idle
// connection holds no closures of its own.
const CONN = Symbol("NodeSocketConn");
type OwnedSocket = Socket & { [CONN]: NodeSocketConn };
function onEnd(this: OwnedSocket) {
  this[CONN].inputEnded();
}
function onData(this: OwnedSocket, chunk: Uint8Array) {
  // A plain view: Buffer#slice shares memory where Uint8Array#slice copies.
  this[CONN].received(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength));
}
function ignore() {} // errors end in "close"

function onRead(this: Socket, n: number): void {
  (this as OwnedSocket)[CONN].received(takeRead(n));
}

/**
 * Reading `remoteAddress` makes node:net keep the peer's address on the socket
 * (`_peername`: an object and two strings, 112 B on Deno) besides our string,
 * for every connection: drop that copy. Its getter reads it again if asked.
 */
function forgetPeername(socket: Socket): void {
  const s = socket as Socket & { _peername?: unknown };
  if (s._peername !== undefined) s._peername = undefined;
}

/**
 * Listen for "end" without a second listener where node:net's own one does nothing. Deno's
 * node:net gives every socket an "end" listener that only matters when `allowHalfOpen` is off
 * (it ends our side too); adding ours turned that socket's "end" entry into an array of two
 * (64 B per connection). On a half-open socket whose one "end" listener is that one, ours
 * takes its place in the socket's listener table (EventEmitter's `_events`, where `on` would
 * put it); anywhere else it is added as usual.
 */
function listenForEnd(socket: Socket): void {
  const events = (socket as Socket & { _events?: Record<string, unknown> })._events;
  const theirs = events?.end;
  if (
    socket.allowHalfOpen && socket.listenerCount("end") === 1 &&
    typeof theirs === "function" && theirs.name === "_onReadableStreamEnd"
  ) {
    events!.end = onEnd;
  } else {
    socket.on("end", onEnd);
  }
}

export class NodeSocketConn implements TransportConn {
  /** The peer's (shared) IP string and its port, joined only when asked (as on Bun). */
  private readonly ip: string;
  private readonly port: number;
  // `declare`: set only when there is one (TLS with a client certificate; streams when asked
  // for), so a plain TCP connection has no slots for them.
  declare readonly peerCertificate: TransportConn["peerCertificate"];
  private readonly socket: Socket;
  private sink: ConnCallbacks | undefined = undefined;
  private ended = false;
  declare private streams?: { readable?: ReadableStream<Uint8Array>; writable?: WritableStream };

  constructor(socket: Socket, cert?: TransportConn["peerCertificate"]) {
    this.socket = socket;
    if (cert) this.peerCertificate = cert;
    // Captured now: node:net cannot tell the address once the socket is closed.
    this.ip = sharedIp(socket.remoteAddress ?? "unknown");
    this.port = socket.remotePort ?? 0;
    forgetPeername(socket);
    (socket as OwnedSocket)[CONN] = this;
    // The input ends once, whichever comes first.
    listenForEnd(socket);
    socket.on("close", onEnd);
    socket.on("error", ignore);
  }

  get remoteAddr(): string {
    return hostPort(this.ip, this.port);
  }

  endWrite(): void {
    if (!this.socket.destroyed) this.socket.end();
  }

  /** "end" or "close" came. */
  inputEnded(): void {
    if (this.ended) return;
    this.ended = true;
    connectionChurn();
    this.sink?.end();
  }

  /** A chunk for the started receiver; a pending promise pauses the socket until it settles. */
  received(chunk: Uint8Array): void {
    const pending = this.sink!.data(chunk);
    if (pending) {
      const socket = this.socket;
      socket.pause();
      const resume = () => socket.resume();
      pending.then(resume, resume);
    }
  }

  close(): void {
    const socket = this.socket;
    if (socket.destroyed) return;
    if (socket.writableLength === 0) return void socket.destroy();
    // Bytes a write already returned for are still queued in the socket: send them first, but
    // a peer that does not read gets CLOSE_FLUSH_MS, not forever.
    const timer = setTimeout(() => socket.destroy(), CLOSE_FLUSH_MS);
    socket.end(() => {
      clearTimeout(timer);
      socket.destroy();
    });
  }

  start(callbacks: ConnCallbacks): void {
    if (this.sink) throw new Error("Cannot start: the Conn is already read");
    this.sink = callbacks;
    const socket = this.socket;
    // Bytes node:net read before now wait in its stream: those come as "data" events.
    if (socket.readableLength > 0 || !readIntoShared(socket, onRead)) socket.on("data", onData);
    if (this.ended) queueMicrotask(() => callbacks.end());
  }

  write(bytes: Uint8Array, length = bytes.byteLength): void | Promise<void> {
    const socket = this.socket;
    if (socket.destroyed || !socket.writable) return Promise.reject(closedError());
    const handle = directHandle(socket);
    if (handle) {
      // Straight to the handle: no copy unless it keeps the bytes, and then the caller
      // waits (as the contract says) instead of a copy being made for every write.
      const view = length === bytes.byteLength ? bytes : bytes.subarray(0, length);
      const req: { buffer?: Uint8Array; oncomplete?: (status: number) => void } = {};
      const kept = writeToHandle(handle, view, req);
      if (kept === 0) return;
      if (kept < 0) return Promise.reject(closedError());
      return new Promise((resolve, reject) => {
        const closed = () => reject(closedError());
        socket.once("close", closed);
        req.oncomplete = (status) => {
          socket.off("close", closed);
          if (status < 0) reject(closedError());
          else resolve();
        };
      });
    }
    // The socket keeps what it is given until sent, and the caller reuses its buffer: a copy,
    // into a slice of node:buffer's shared pool (up to 4 KiB), not an ArrayBuffer of its own:
    // per write a view, not a backing store that each scavenge must free (bench/notes/deno.md,
    // "Deno": scavenge pauses 0.8 -> 0.3 ms), and a Buffer, which the stream takes as it is.
    const copy = Buffer.allocUnsafe(length);
    copy.set(length === bytes.byteLength ? bytes : bytes.subarray(0, length));
    if (socket.write(copy)) return;
    // Over the socket's high-water mark: the caller waits for "drain" (or the end).
    return new Promise((resolve, reject) => {
      const done = () => {
        socket.off("drain", done);
        socket.off("close", done);
        if (socket.destroyed) reject(closedError());
        else resolve();
      };
      socket.on("drain", done);
      socket.on("close", done);
    });
  }

  get readable(): ReadableStream<Uint8Array> {
    const streams = this.streams ??= {};
    if (streams.readable) return streams.readable;
    if (this.sink) throw new Error("Cannot read: the Conn was started with callbacks");
    return streams.readable = readableOf(this);
  }

  get writable(): WritableStream<Uint8Array> {
    return (this.streams ??= {}).writable ??= writableOf(
      this,
      () => new Promise<void>((resolve) => this.socket.end(resolve)),
    );
  }
}
