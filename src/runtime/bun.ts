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
import type { Conn, Listener, ListenOptions, Runtime } from "./types.ts";

interface BunSocket {
  data: ConnState;
  remoteAddress: string;
  remotePort: number;
  write(data: Uint8Array): number;
  end(): void;
  pause(): void;
  resume(): void;
  setNoDelay(on: boolean): boolean;
}
interface BunServer {
  port: number;
  stop(closeActive?: boolean): void;
}
declare const Bun: {
  listen(opts: {
    hostname: string;
    port: number;
    socket: {
      open(s: BunSocket): void;
      data(s: BunSocket, chunk: Uint8Array): void;
      drain(s: BunSocket): void;
      close(s: BunSocket, err?: Error): void;
      error(s: BunSocket, err: Error): void;
    };
  }): BunServer;
  file(path: string): { text(): Promise<string> };
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

function wrap(socket: BunSocket, state: ConnState): Conn {
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
          try {
            socket.setNoDelay(true);
            onConn(wrap(socket, socket.data));
          } catch {
            socket.end();
          }
        },
        data: onData,
        drain: onDrain,
        close: onClose,
        error: (socket, err) => onClose(socket, err),
      },
    });
    let stopped = false;
    resolve({
      port: server.port,
      close() {
        // stop(false): stop accepting, leave live connections to their owners.
        if (!stopped) server.stop(false);
        stopped = true;
        return Promise.resolve();
      },
    });
  });
}

export const bunRuntime: Runtime = {
  name: "bun",
  listen,
  onSignal(signal, handler) {
    process.on(signal, handler);
  },
  exit(code: number): never {
    process.exit(code);
  },
  args: () => process.argv.slice(2),
  readTextFile: (path) => Bun.file(path).text(),
  env: (name) => process.env[name],
};
