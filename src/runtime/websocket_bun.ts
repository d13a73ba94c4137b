/**
 * ws:// listener for Bun: `Bun.serve` with its `websocket` handlers. Each
 * ServerWebSocket becomes a Conn: binary messages are readable chunks, a write
 * is one binary message (`send()` returning -1 means queued over the
 * backpressure limit: the write waits for `drain`; 0 means dropped: closed).
 * Bun echoes the first offered subprotocol unless `server.upgrade` sets the
 * header, so it is always set, with the protocol chosen by
 * src/transport/websocket_protocol.ts. Bun cannot pause a WebSocket's reads,
 * so there is no read backpressure: `maxPayloadLength` (from
 * `maxMessageBytes`, else Bun's 16 MiB) bounds one message, and the messages
 * the MQTT side has not taken yet are bounded by `inputLimit` (past it the
 * connection is closed 1008 and the reader gets an error naming why). Output
 * Bun buffers is bounded by `backpressureLimit`; past it writes wait for
 * `drain`. A close that the peer does not complete is cut after CLOSE_GRACE_MS.
 */
import { hostPort } from "./address.ts";
import type { Listener, TransportConn, WebSocketListenOptions } from "./types.ts";

interface WsData {
  remoteAddr: string;
  /** Bytes of input the reader may leave queued (`inputLimit`). */
  limit: number;
  controller?: ReadableStreamDefaultController<Uint8Array>;
  closed: boolean;
  /** Why we closed it, for a peer that sent what MQTT over WebSocket does not allow. */
  why?: string;
  drainWaiters: { resolve(): void; reject(e: Error): void }[];
}
interface BunServerWebSocket {
  data: WsData;
  readyState: number;
  send(data: Uint8Array): number;
  close(code?: number, reason?: string): void;
  /** Close the socket now, without the close handshake. */
  terminate(): void;
}
interface BunHttpServer {
  port: number;
  stop(closeActive?: boolean): void;
  upgrade(req: Request, opts: { headers?: HeadersInit; data: WsData }): boolean;
  requestIP(req: Request): { address: string; port: number } | null;
}
declare const Bun: {
  serve(opts: {
    hostname: string;
    port: number;
    reusePort?: boolean;
    fetch(req: Request, server: BunHttpServer): Response | undefined;
    websocket: {
      idleTimeout?: number;
      maxPayloadLength?: number;
      backpressureLimit?: number;
      open(ws: BunServerWebSocket): void;
      message(ws: BunServerWebSocket, msg: string | Uint8Array): void;
      close(ws: BunServerWebSocket, code: number, reason: string): void;
      drain(ws: BunServerWebSocket): void;
    };
  }): BunHttpServer;
};

const closedError = () => new Error("Cannot write: connection closed");

const MB = 1024 * 1024;
/** Output Bun may hold for one WebSocket before `send` reports backpressure. */
const BACKPRESSURE_LIMIT = MB;
/** How long a close waits for the peer's close frame before the socket is cut. */
const CLOSE_GRACE_MS = 2000;
/** Unread input allowed per connection: a few of the largest messages, at least 4 MiB. */
export function inputLimit(maxMessageBytes = 16 * MB): number {
  return Math.max(4 * MB, 2 * maxMessageBytes);
}

export function listenBunWebSocket(
  opts: WebSocketListenOptions,
  onConn: (conn: TransportConn) => void,
): Promise<Listener> {
  return new Promise((resolve) => {
    const server = Bun.serve({
      hostname: opts.hostname,
      port: opts.port,
      reusePort: opts.reusePort === true,
      fetch(req, server) {
        const decision = opts.decide({
          method: req.method,
          path: new URL(req.url).pathname,
          headers: req.headers,
        });
        if (!decision.upgrade) {
          return new Response(decision.body, {
            status: decision.status,
            headers: { "content-type": "text/plain; charset=utf-8" },
          });
        }
        const ip = server.requestIP(req);
        const remoteAddr = ip ? hostPort(ip.address, ip.port) : "unknown";
        const data: WsData = { remoteAddr, limit: 0, closed: false, drainWaiters: [] };
        const headers: Record<string, string> = decision.protocol
          ? { "Sec-WebSocket-Protocol": decision.protocol }
          : {};
        if (server.upgrade(req, { headers, data })) return undefined;
        return new Response("WebSocket upgrade failed\n", { status: 400 });
      },
      websocket: {
        // MQTT's keep-alive decides when an idle client is gone, as on TCP.
        idleTimeout: 0,
        maxPayloadLength: opts.maxMessageBytes,
        backpressureLimit: BACKPRESSURE_LIMIT,
        open(ws) {
          try {
            onConn(wrap(ws, inputLimit(opts.maxMessageBytes)));
          } catch {
            ws.close(1011);
          }
        },
        message(ws, msg) {
          const d = ws.data;
          if (d.closed || !d.controller) return;
          if (typeof msg === "string") {
            // Ended first: close() runs the close handler at once, which would end it unexplained.
            // Ended cleanly: what came before it is still read.
            d.why = "WebSocket text frame (MQTT needs binary) (closed 1003)";
            end(d);
            ws.close(1003, "MQTT needs binary frames"); // [MQTT-6.0.0-1]
            cutAfterGrace(ws);
            return;
          }
          d.controller.enqueue(msg);
          // Bun cannot stop reading: past the bound, this connection ends instead.
          if ((d.controller.desiredSize ?? 0) < 0) {
            const queued = d.limit - (d.controller.desiredSize ?? 0);
            const why = `WebSocket input not yet read reached ${queued} bytes (bound ${d.limit})`;
            end(d, `${why} (closed 1008)`); // before close(), as above
            ws.close(1008, "input backlog over its bound");
            cutAfterGrace(ws);
          }
        },
        close(ws) {
          end(ws.data);
        },
        drain(ws) {
          const waiters = ws.data.drainWaiters.splice(0);
          for (const w of waiters) w.resolve();
        },
      },
    });
    let stopped = false;
    resolve({
      port: server.port,
      close() {
        // stop(false): stop accepting, upgraded WebSockets stay with the broker.
        if (!stopped) server.stop(false);
        stopped = true;
        return Promise.resolve();
      },
    });
  });
}

/** The input ends: closed by the peer, or (`why`: closeReason) refused by us, dropping the rest. */
function end(d: WsData, why?: string): void {
  if (d.closed) return;
  d.closed = true;
  for (const w of d.drainWaiters.splice(0)) w.reject(closedError());
  try {
    d.why ??= why;
    if (why) d.controller?.error(new Error(why));
    else d.controller?.close();
  } catch { /* the reader already cancelled */ }
}

/** The socket is cut if the peer has not completed the close handshake in time. */
function cutAfterGrace(ws: BunServerWebSocket): void {
  setTimeout(() => {
    if (ws.readyState !== 3) ws.terminate();
  }, CLOSE_GRACE_MS);
}

function wrap(ws: BunServerWebSocket, limit: number): TransportConn {
  const d = ws.data;
  d.limit = limit;
  const close = () => {
    if (d.closed) return;
    ws.close(1000);
    cutAfterGrace(ws);
  };
  const readable = new ReadableStream<Uint8Array>({
    start(controller) {
      d.controller = controller;
    },
    cancel: close,
  }, { highWaterMark: limit, size: (chunk) => chunk.byteLength });
  const writable = new WritableStream<Uint8Array>({
    write(chunk) {
      if (d.closed) return Promise.reject(closedError());
      const n = ws.send(chunk);
      if (n === 0) return Promise.reject(closedError());
      if (n > 0) return;
      // -1: queued, but over the backpressure limit.
      return new Promise<void>((resolve, reject) => d.drainWaiters.push({ resolve, reject }));
    },
    close,
    abort: close,
  });
  return {
    readable,
    writable,
    remoteAddr: d.remoteAddr,
    close,
    get closeReason() {
      return d.why;
    },
  };
}
