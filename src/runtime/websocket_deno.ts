/**
 * ws:// listener for Deno: `Deno.serve` + `Deno.upgradeWebSocket`.
 *
 * `Deno.upgradeWebSocket(req, { protocol: "mqtt" })` answers 500 when the
 * client offers "mqttv3.1,mqtt" in one header, so we upgrade without
 * `protocol` and set `Sec-WebSocket-Protocol` on the response ourselves, with
 * the protocol chosen by src/transport/websocket_protocol.ts.
 */
import { hostPort } from "./address.ts";
import type { Listener, TransportConn, WebSocketListenOptions } from "./types.ts";
import { webSocketConn } from "./websocket_conn.ts";

export function listenDenoWebSocket(
  opts: WebSocketListenOptions,
  onConn: (conn: TransportConn) => void,
): Promise<Listener> {
  return new Promise((resolve, reject) => {
    const abort = new AbortController();
    // Aborting Deno.serve also drops its upgraded WebSockets, so once closed the
    // server answers 503 and is aborted when the last WebSocket has closed.
    let open = 0;
    let closing = false;
    const maybeStop = () => {
      if (closing && open === 0) abort.abort();
    };
    let server: Deno.HttpServer<Deno.NetAddr>;
    try {
      server = Deno.serve({
        hostname: opts.hostname,
        port: opts.port,
        signal: abort.signal,
        onListen: () => {},
        onError: () => new Response("Internal error\n", { status: 500 }),
      }, (req, info) => {
        if (closing) return new Response("Shutting down\n", { status: 503 });
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
        // Read before the upgrade: afterwards the request is closed and remoteAddr throws.
        const a = info.remoteAddr;
        const remote = hostPort(a.hostname, a.port);
        const { socket, response } = Deno.upgradeWebSocket(req);
        if (decision.protocol) response.headers.set("sec-websocket-protocol", decision.protocol);
        open++;
        socket.addEventListener("close", () => {
          open--;
          maybeStop();
        });
        try {
          onConn(webSocketConn(socket, remote));
        } catch {
          socket.addEventListener("open", () => socket.close(1011));
        }
        return response;
      });
    } catch (e) {
      reject(e);
      return;
    }
    resolve({
      port: server.addr.port,
      close() {
        // Stop upgrading; live WebSockets stay with the broker until it closes them.
        closing = true;
        maybeStop();
        return Promise.resolve();
      },
    });
  });
}
