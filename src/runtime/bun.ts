/**
 * Bun adapter: Bun.listen hands out callback sockets; each becomes a Conn with
 * a ReadableStream fed by `data` and a WritableStream over `socket.write()`.
 *
 * Facts about Bun 1.4 this relies on (checked by tests/runtime_test.ts):
 * - `data` gets a fresh Buffer per call (Bun does not reuse it), so chunks are
 *   enqueued without copying.
 * - `socket.write()` returns the bytes accepted (possibly fewer than given, -1
 *   once closed) and does NOT keep the rest: we hold it and retry on `drain`.
 * - `socket.pause()`/`resume()` stop and restart reading: used for backpressure
 *   when the stream's queue is full.
 * - `socket.end()` flushes, closes, and fires `close` at once.
 */
import process from "node:process";
import { writeFile } from "node:fs/promises";
import type {
  Conn,
  Listener,
  ListenOptions,
  Runtime,
  TlsCredentials,
  TlsListener,
  TlsListenOptions,
} from "./types.ts";
import { type NodeStylePeerCertificate, peerCertificate } from "./certs.ts";
import { listenBunWebSocket } from "./websocket_bun.ts";

interface BunSocket {
  data: ConnState;
  remoteAddress: string;
  remotePort: number;
  write(data: Uint8Array): number;
  end(): void;
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
      open(s: BunSocket): void;
      handshake?(s: BunSocket, success: boolean, err: Error | null): void;
      data(s: BunSocket, chunk: Uint8Array): void;
      drain(s: BunSocket): void;
      close(s: BunSocket, err?: Error): void;
      error(s: BunSocket, err: Error): void;
    };
  }): BunServer;
  file(path: string): { text(): Promise<string>; bytes(): Promise<Uint8Array> };
};

/** Bytes the read side queues before it pauses the socket. */
const READ_HIGH_WATER = 64 * 1024;

interface ConnState {
  controller?: ReadableStreamDefaultController<Uint8Array>;
  paused: boolean;
  closed: boolean;
  /** Unsent tail of the current write, with its waiter. */
  pending?: { bytes: Uint8Array; resolve(): void; reject(e: Error): void };
}

const closedError = () => new Error("Cannot write: connection closed");

function wrap(socket: BunSocket, state: ConnState, cert?: Conn["peerCertificate"]): Conn {
  const readable = new ReadableStream<Uint8Array>({
    start(controller) {
      state.controller = controller;
    },
    pull() {
      if (state.paused && !state.closed) {
        state.paused = false;
        socket.resume();
      }
    },
    cancel() {
      socket.end();
    },
  }, { highWaterMark: READ_HIGH_WATER, size: (chunk) => chunk.byteLength });

  const writable = new WritableStream<Uint8Array>({
    write(chunk) {
      if (state.closed) return Promise.reject(closedError());
      const n = socket.write(chunk);
      if (n === chunk.byteLength) return;
      if (n < 0) return Promise.reject(closedError());
      return new Promise<void>((resolve, reject) => {
        state.pending = { bytes: chunk.subarray(n), resolve, reject };
      });
    },
    close() {
      socket.end();
    },
    abort() {
      socket.end();
    },
  });

  const remoteAddr = socket.remoteAddress.includes(":")
    ? `[${socket.remoteAddress}]:${socket.remotePort}`
    : `${socket.remoteAddress}:${socket.remotePort}`;
  return {
    readable,
    writable,
    remoteAddr,
    peerCertificate: cert,
    close() {
      if (!state.closed) socket.end();
    },
  };
}

function onData(socket: BunSocket, chunk: Uint8Array): void {
  const s = socket.data;
  if (!s.controller || s.closed) return;
  s.controller.enqueue(chunk);
  if ((s.controller.desiredSize ?? 1) <= 0 && !s.paused) {
    s.paused = true;
    socket.pause();
  }
}

function onDrain(socket: BunSocket): void {
  const p = socket.data.pending;
  if (!p) return;
  const n = socket.write(p.bytes);
  if (n < 0) return; // `close` rejects the waiter.
  if (n === p.bytes.byteLength) {
    socket.data.pending = undefined;
    p.resolve();
  } else p.bytes = p.bytes.subarray(n);
}

function onClose(socket: BunSocket, err?: Error): void {
  const s = socket.data;
  if (s.closed) return;
  s.closed = true;
  s.pending?.reject(err ?? closedError());
  s.pending = undefined;
  try {
    if (err) s.controller?.error(err);
    else s.controller?.close();
  } catch { /* the reader already cancelled */ }
}

function listen(opts: ListenOptions, onConn: (conn: Conn) => void): Promise<Listener> {
  return new Promise((resolve) => {
    const server = Bun.listen({
      hostname: opts.hostname,
      port: opts.port,
      socket: {
        open(socket) {
          socket.data = { paused: false, closed: false };
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

function accept(socket: BunSocket, onConn: (conn: Conn) => void, cert?: Conn["peerCertificate"]) {
  try {
    socket.setNoDelay(true);
    onConn(wrap(socket, socket.data, cert));
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
function listenTls(opts: TlsListenOptions, onConn: (conn: Conn) => void): Promise<TlsListener> {
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
        open(socket) {
          socket.data = { paused: false, closed: false };
        },
        handshake(socket, success) {
          const cert = success ? checkClient(socket, opts.clientAuth) : false;
          if (cert === false) socket.end();
          else accept(socket, onConn, cert);
        },
        data: onData,
        drain: onDrain,
        close: onClose,
        error: (socket, err) => onClose(socket, err),
      },
    });
  return new Promise((resolve) => {
    let server = bind(opts.credentials, opts.port);
    const listener = stopper(() => server, server.port);
    resolve({
      ...listener,
      close: () => listener.close(),
      setCredentials(credentials) {
        const next = bind(credentials, server.port);
        const old = server;
        server = next;
        old.stop(false);
        return Promise.resolve();
      },
    });
  });
}

/** The verified client certificate, undefined for none, false to refuse the client. */
function checkClient(socket: BunSocket, auth: TlsListenOptions["clientAuth"]) {
  if (auth === "NONE") return undefined;
  const cert = socket.getPeerCertificate?.();
  const presented = cert !== undefined && cert !== null && cert.subject !== undefined;
  if (socket.authorized && presented) return peerCertificate(cert);
  // OPTIONAL: no certificate is fine, a certificate that does not verify is not.
  return auth === "OPTIONAL" && !presented ? undefined : false;
}

export const bunRuntime: Runtime = {
  name: "bun",
  listen,
  listenTls,
  listenWebSocket: listenBunWebSocket,
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
};
