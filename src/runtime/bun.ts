/**
 * Bun adapter: Bun.listen hands out callback sockets; each becomes a Conn
 * whose callback path (`start`/`write`) maps straight onto Bun's `data`,
 * `drain` and `close` handlers. The Web streams (`readable`/`writable`) are
 * built only when someone asks for them (wss:// over TLS, tests), so an idle
 * MQTT connection costs one small object on top of Bun's socket.
 *
 * Facts about Bun 1.4 this relies on (checked by tests/runtime_test.ts):
 * - `data` gets a fresh Buffer per call (Bun does not reuse it), so chunks are
 *   handed on without copying.
 * - `socket.write()` returns the bytes accepted (possibly fewer than given, -1
 *   once closed). What it accepted it has copied (to the kernel, or to its
 *   cork buffer / TLS record), so the caller may reuse the buffer at once; it
 *   does NOT keep the rest: we hold it and retry on `drain`.
 * - `socket.pause()`/`resume()` stop and restart reading: used for backpressure.
 * - `socket.end()` flushes, closes, and fires `close` at once.
 * - `socket.remoteAddress` is gone once closed, so it is read at accept.
 */
import { hostPort, sharedIp } from "./address.ts";
import process from "node:process";
import { writeFile } from "node:fs/promises";
import type {
  ConnCallbacks,
  Listener,
  ListenOptions,
  PeerCertificate,
  Runtime,
  TlsCredentials,
  TlsListener,
  TlsListenOptions,
  TransportConn,
} from "./types.ts";
import { clientCertificate, type NodeStylePeerCertificate } from "./certs.ts";
import { escapeForLog } from "../log/escape.ts";
import { HELPER_NICE } from "./helper_threads.ts";
import { bunThreadIdle } from "./sched_idle_bun.ts";

interface BunSocket {
  /** Set once the TransportConn is handed out (after the handshake, on TLS). */
  data: BunConn | undefined;
  remoteAddress: string;
  remotePort: number;
  write(data: Uint8Array, byteOffset?: number, byteLength?: number): number;
  end(): void;
  /** Without an argument: end the write side (TCP FIN); reading goes on. */
  shutdown(halfClose?: boolean): void;
  pause(): void;
  resume(): void;
  setNoDelay(on: boolean): boolean;
  /** TLS sockets only. */
  authorized?: boolean;
  getPeerCertificate?(): NodeStylePeerCertificate | undefined | null;
}
interface BunServer {
  port: number;
  stop(closeActive?: boolean): void;
}
declare const Bun: {
  listen(opts: {
    hostname: string;
    port: number;
    reusePort?: boolean;
    tls?: {
      cert: string;
      key: string;
      ca?: string;
      requestCert?: boolean;
      rejectUnauthorized?: boolean;
    };
    socket: {
      binaryType?: "buffer" | "uint8array" | "arraybuffer";
      open(s: BunSocket): void;
      handshake?(s: BunSocket, success: boolean, err: Error | null): void;
      data(s: BunSocket, chunk: Uint8Array): void;
      drain(s: BunSocket): void;
      close(s: BunSocket, err?: Error): void;
      error(s: BunSocket, err: Error): void;
    };
  }): BunServer;
  file(path: string): { text(): Promise<string>; bytes(): Promise<Uint8Array> };
  /** A garbage collection now; `true`: a full one, synchronously. */
  gc(full: boolean): void;
};

/** Bytes the read side queues before it pauses the socket (stream path). */
const READ_HIGH_WATER = 64 * 1024;

const closedError = () => new Error("Cannot write: connection closed");

/** BunConn.flags */
const PAUSED = 1, CLOSED = 2, ENDED = 4;

/** What only some connections need, made on first use (an idle one never does). */
interface Extra {
  cert?: PeerCertificate;
  /** Stream path, once `readable` or `writable` was read. */
  readable?: ReadableStream<Uint8Array>;
  writable?: WritableStream<Uint8Array>;
  controller?: ReadableStreamDefaultController<Uint8Array>;
  /** Chunks that arrived while nobody listened, or while the sink digested a promise. */
  held?: Uint8Array[];
  /** Unsent tail of the current write, with its waiter. */
  pending?: { bytes: Uint8Array; resolve(): void; reject(e: Error): void };
}

/**
 * One Bun socket as a Conn, kept as `socket.data` so the listener's shared
 * handlers reach it without a closure per connection. The callback path
 * (`start`/`write`) is the fast one; the Web streams are only built when
 * someone reads `readable` or `writable`. An idle connection on the callback
 * path holds this five-field object and one string.
 */
class BunConn implements TransportConn {
  /** Kept as the peer's (shared) IP string and its port; joined only when asked. */
  private readonly ip: string;
  private readonly port: number;
  private readonly socket: BunSocket;
  /** Callback-path receiver, once `start` was called. */
  private sink: ConnCallbacks | undefined = undefined;
  private flags = 0;
  private x: Extra | undefined = undefined;

  constructor(socket: BunSocket, cert: PeerCertificate | undefined) {
    this.socket = socket;
    if (cert) this.x = { cert };
    // Captured now: Bun forgets the address once the socket is closed.
    this.ip = sharedIp(socket.remoteAddress);
    this.port = socket.remotePort;
  }

  get remoteAddr(): string {
    return hostPort(this.ip, this.port);
  }

  get peerCertificate(): PeerCertificate | undefined {
    return this.x?.cert;
  }

  private get extra(): Extra {
    return this.x ??= {};
  }

  start(callbacks: ConnCallbacks): void {
    if (this.sink || this.x?.controller) {
      throw new Error("Cannot start: the TransportConn is already read");
    }
    this.sink = callbacks;
    // Bytes (or the end) that came before anyone listened.
    if (this.x?.held) queueMicrotask(() => this.digested());
    else if (this.flags & CLOSED) queueMicrotask(() => this.end());
  }

  write(bytes: Uint8Array, length = bytes.byteLength): void | Promise<void> {
    if (this.flags & CLOSED) return Promise.reject(closedError());
    const first = this.x?.pending;
    if (first) {
      // One write at a time is expected; a second one queues behind the first.
      const rest = first.bytes;
      const both = new Uint8Array(rest.byteLength + length);
      both.set(rest);
      both.set(bytes.subarray(0, length), rest.byteLength);
      first.bytes = both;
      return new Promise<void>((resolve, reject) => {
        const { resolve: r1, reject: j1 } = first;
        first.resolve = () => (r1(), resolve());
        first.reject = (e) => (j1(e), reject(e));
      });
    }
    const n = this.socket.write(bytes, 0, length);
    // Fully taken: Bun copied the bytes (kernel or its cork buffer), the caller may reuse them.
    if (n === length) return;
    if (n < 0) return Promise.reject(closedError());
    return new Promise<void>((resolve, reject) => {
      this.extra.pending = { bytes: bytes.subarray(n, length), resolve, reject };
    });
  }

  close(): void {
    if (!(this.flags & CLOSED)) this.socket.end();
  }

  endWrite(): void {
    // shutdown() sends FIN and keeps reading; shutdown(true) ends the socket at once (Bun 1.4).
    if (!(this.flags & CLOSED)) this.socket.shutdown();
  }

  get readable(): ReadableStream<Uint8Array> {
    const x = this.extra;
    if (x.readable) return x.readable;
    if (this.sink) throw new Error("Cannot read: the TransportConn was started with callbacks");
    return x.readable = new ReadableStream<Uint8Array>({
      start: (controller) => {
        x.controller = controller;
        const held = x.held;
        x.held = undefined;
        if (held) { for (const chunk of held) controller.enqueue(chunk); }
        if (this.flags & CLOSED) controller.close();
      },
      pull: () => this.resume(),
      cancel: () => this.socket.end(),
    }, { highWaterMark: READ_HIGH_WATER, size: (chunk) => chunk.byteLength });
  }

  get writable(): WritableStream<Uint8Array> {
    return this.extra.writable ??= new WritableStream<Uint8Array>({
      write: (chunk) => this.write(chunk),
      close: () => this.socket.end(),
      abort: () => this.socket.end(),
    });
  }

  onData(chunk: Uint8Array): void {
    if (this.flags & CLOSED) return;
    const x = this.x;
    if (x?.controller) {
      x.controller.enqueue(chunk);
      if ((x.controller.desiredSize ?? 1) <= 0) this.pause();
    } else if (x?.held) x.held.push(chunk);
    else if (this.sink) this.deliver(chunk);
    else {
      // Nobody listens yet: hold the bytes and stop reading.
      this.extra.held = [chunk];
      this.pause();
    }
  }

  /** Hand `chunk` to the sink; while it digests a promise, hold what follows and stop reading. */
  private deliver(chunk: Uint8Array): boolean {
    let busy: void | Promise<void>;
    try {
      busy = this.sink!.data(chunk);
    } catch {
      this.socket.end();
      return false;
    }
    if (!busy) return false;
    this.extra.held ??= [];
    this.pause();
    const next = () => this.digested();
    busy.then(next, next);
    return true;
  }

  /** The sink can take more: deliver what was held, then read again (or end). */
  private digested(): void {
    const x = this.x!;
    const held = x.held!;
    x.held = undefined;
    for (let i = 0; i < held.length; i++) {
      if (this.deliver(held[i])) {
        // Busy again: the rest waits behind the new promise, ahead of newer chunks.
        x.held!.unshift(...held.slice(i + 1));
        return;
      }
    }
    if (this.flags & CLOSED) this.end();
    else this.resume();
  }

  private pause(): void {
    if (this.flags & PAUSED) return;
    this.flags |= PAUSED;
    this.socket.pause();
  }

  private resume(): void {
    if ((this.flags & (PAUSED | CLOSED)) !== PAUSED) return;
    this.flags &= ~PAUSED;
    this.socket.resume();
  }

  private end(): void {
    if (this.flags & ENDED) return;
    this.flags |= ENDED;
    this.sink!.end();
  }

  onDrain(): void {
    const p = this.x?.pending;
    if (!p) return;
    const n = this.socket.write(p.bytes);
    if (n < 0) return; // `close` rejects the waiter.
    if (n === p.bytes.byteLength) {
      this.x!.pending = undefined;
      p.resolve();
    } else p.bytes = p.bytes.subarray(n);
  }

  onClose(err?: Error): void {
    if (this.flags & CLOSED) return;
    this.flags |= CLOSED;
    const x = this.x;
    const p = x?.pending;
    if (p) {
      x!.pending = undefined;
      p.reject(err ?? closedError());
    }
    if (this.sink) {
      // Held chunks are still delivered (like a stream's queue); `digested` ends after them.
      if (!x?.held) this.end();
      return;
    }
    try {
      if (err) x?.controller?.error(err);
      else x?.controller?.close();
    } catch { /* the reader already cancelled */ }
  }
}

// Shared by every socket of every listener: no per-connection closures.
const onData = (socket: BunSocket, chunk: Uint8Array) => socket.data?.onData(chunk);
const onDrain = (socket: BunSocket) => socket.data?.onDrain();
const onClose = (socket: BunSocket, err?: Error) => socket.data?.onClose(err);

function listen(opts: ListenOptions, onConn: (conn: TransportConn) => void): Promise<Listener> {
  return new Promise((resolve) => {
    const server = Bun.listen({
      hostname: opts.hostname,
      port: opts.port,
      reusePort: opts.reusePort === true,
      socket: {
        // Plain Uint8Array chunks: the core needs no Buffer methods, and they cost less to make.
        binaryType: "uint8array",
        open(socket) {
          accept(socket, onConn);
        },
        data: onData,
        drain: onDrain,
        close: onClose,
        error: (socket, err) => onClose(socket, err),
      },
    });
    resolve(stopper(() => server, server.port));
  });
}

function accept(socket: BunSocket, onConn: (conn: TransportConn) => void, cert?: PeerCertificate) {
  try {
    socket.setNoDelay(true);
    const conn = new BunConn(socket, cert);
    socket.data = conn;
    onConn(conn);
  } catch {
    socket.end();
  }
}

function stopper(current: () => BunServer, port: number): Listener {
  let stopped = false;
  return {
    port,
    close() {
      // stop(false): stop accepting, leave live connections to their owners.
      if (!stopped) current().stop(false);
      stopped = true;
      return Promise.resolve();
    },
  };
}

/**
 * TLS with `Bun.listen({ tls })`, which can request and verify client
 * certificates natively (`requestCert`, `ca`; `socket.authorized`,
 * `getPeerCertificate()`). The Conn is handed over after the handshake, when
 * the certificate is known. Bun cannot change the certificate of a listening
 * socket (`reload()` only swaps handlers), so `setCredentials` binds a second
 * listener on the same port with SO_REUSEPORT, then stops the first: no
 * moment without a listener, and open connections stay. (The cost of
 * `reusePort`: a second mqttx of the same user on that port would share it
 * instead of failing with EADDRINUSE.)
 */
function listenTls(
  opts: TlsListenOptions,
  onConn: (conn: TransportConn) => void,
): Promise<TlsListener> {
  const bind = (credentials: TlsCredentials, port: number) =>
    Bun.listen({
      hostname: opts.hostname,
      port,
      reusePort: true,
      tls: {
        cert: credentials.cert,
        key: credentials.key,
        ca: credentials.ca,
        requestCert: opts.clientAuth !== "NONE",
        rejectUnauthorized: opts.clientAuth === "REQUIRE",
      },
      socket: {
        // Plain Uint8Array chunks: the core needs no Buffer methods, and they cost less to make.
        binaryType: "uint8array",
        // A socket that never finishes the TLS handshake must not hold a descriptor forever.
        open(socket) {
          handshakes.set(
            socket,
            setTimeout(() => refuse(socket, "no TLS handshake in time"), HANDSHAKE_TIMEOUT_MS),
          );
        },
        handshake(socket, success, err) {
          clearTimeout(handshakes.get(socket));
          handshakes.delete(socket);
          if (!success) return refuse(socket, `TLS handshake failed (${err?.message ?? "?"})`);
          const cert = clientCertificate(
            opts.clientAuth,
            !!socket.authorized,
            socket.getPeerCertificate?.(),
          );
          if (cert === false) refuse(socket, "client certificate refused");
          else accept(socket, onConn, cert);
        },
        data: onData,
        drain: onDrain,
        close: (socket, err) => {
          clearTimeout(handshakes.get(socket));
          handshakes.delete(socket);
          onClose(socket, err);
        },
        error: (socket, err) => onClose(socket, err),
      },
    });
  const refuse = (socket: BunSocket, why: string) => {
    opts.log?.(
      `closing ${hostPort(socket.remoteAddress, socket.remotePort)}: ${escapeForLog(why)}`,
    );
    socket.end();
  };
  return new Promise((resolve) => {
    let stopped = false;
    let server = bind(opts.credentials, opts.port);
    const listener = stopper(() => server, server.port);
    resolve({
      ...listener,
      close: () => {
        stopped = true;
        return listener.close();
      },
      setCredentials(credentials) {
        if (stopped) return Promise.resolve(); // a late reload must not bind again
        const next = bind(credentials, server.port);
        const old = server;
        server = next;
        old.stop(false);
        return Promise.resolve();
      },
    });
  });
}

/** TLS sockets still in their handshake, and the timer that ends them. */
const handshakes = new Map<BunSocket, ReturnType<typeof setTimeout>>();
const HANDSHAKE_TIMEOUT_MS = 10_000;

export const bunRuntime: Runtime = {
  name: "bun",
  listen,
  listenTls,
  onSignal(signal, handler) {
    process.on(signal, handler);
    return () => void process.off(signal, handler);
  },
  exit(code: number): never {
    process.exit(code);
  },
  args: () => process.argv.slice(2),
  readTextFile: (path) => Bun.file(path).text(),
  readFile: (path) => Bun.file(path).bytes(),
  writeTextFile: (path, data, opts) => writeFile(path, data, { mode: opts?.mode }),
  env: (name) => process.env[name],
  // JavaScriptCore's compiler threads, mimalloc's page scavenger, JSC's start-up warm-up.
  // Not SCHED_BATCH: on Bun it made no difference that stood out from the noise (8 rounds
  // of S1, 7 of S4-rate200; bench/notes/sched_batch.md). The compilers and the scavenger run
  // 1-5 ms unbroken when they get the core, so they are idle while the loop has slack.
  helperThreads: [
    { prefix: "JITWorker", nice: HELPER_NICE, idleWhileQuiet: true },
    { prefix: "mi-scavenger", nice: HELPER_NICE, idleWhileQuiet: true },
    { prefix: "JSCWarmUp", nice: HELPER_NICE },
  ],
  threadIdle: bunThreadIdle,
  collectGarbage: () => Bun.gc(true),
};
