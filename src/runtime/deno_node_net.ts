/**
 * Plain TCP for Deno on its `node:net` (a supported Deno API, like `Deno.listen`): below its
 * Socket, on the same native handles, where tcp_handles.ts can (an IP address to bind).
 *
 * Why not `Deno.listen` + `conn.read(buf)`: an idle connection must keep one read pending to
 * learn of data, and that pending op, its promises and its buffer cost about 3.6 KB per
 * connection (10,000 idle sockets, Deno 2.9), where a `node:net` socket waits for data without
 * one; QoS 1 ingest also costs less broker CPU per message. Numbers: bench/notes/deno.md.
 */
import * as net from "node:net";
import { NodeSocketConn } from "./node_socket_conn.ts";
import { connectionChurn, reclaimAfterStart } from "./deno_memory.ts";
import { listenTcpHandles } from "./tcp_handles.ts";
import { keepAccepting } from "./accept_rearm.ts";
import type { Listener, ListenOptions, TransportConn } from "./types.ts";

export function listenNodeNet(
  opts: ListenOptions,
  onConn: (conn: TransportConn) => void,
): Promise<Listener> {
  // Below node:net's Socket where this Deno allows (tcp_handles.ts); else node:net itself.
  const handles = listenTcpHandles(opts, onConn);
  if (handles) return handles.then((listener) => (reclaimAfterStart(), listener));
  const server = net.createServer({ noDelay: true, allowHalfOpen: true }, (socket) => {
    connectionChurn();
    try {
      onConn(new NodeSocketConn(socket));
    } catch {
      socket.destroy();
    }
  });
  return listening(server, opts).then((listener) => {
    reclaimAfterStart();
    return listener;
  });
}

/**
 * `server` listening on `opts`' address (node:net's reusePort: Deno 2.9 has it; Deno.listen's
 * needs --unstable-net): its port, and a close that stops accepting and leaves live
 * connections with their owners. Also for the TLS listener (tls_deno.ts).
 */
export function listening(server: net.Server, opts: ListenOptions): Promise<Listener> {
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen({ host: opts.hostname, port: opts.port, reusePort: opts.reusePort }, () => {
      server.off("error", reject);
      server.on("error", () => {}); // a failed accept must not stop the server
      // node:net's default backlog, as its listen() just used.
      const stopRearm = keepAccepting((server as net.Server & { _handle?: unknown })._handle, 511);
      let closed = false;
      resolve({
        port: (server.address() as net.AddressInfo).port,
        close() {
          stopRearm();
          if (!closed) server.close();
          closed = true;
          return Promise.resolve();
        },
      });
    });
  });
}
