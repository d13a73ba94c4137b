/**
 * Plain TCP listener for Deno on node:net's native TCP handles (the `tcp_wrap` binding that
 * node:net's Server is built on): each accepted handle becomes a TcpHandleConn, with no
 * node:net Socket in between (tcp_handle_conn.ts says why).
 *
 * Used where this Deno has every hook it needs and the host is an IP address (a name would
 * need node:net's lookup); otherwise `listenTcpHandles` returns null and the caller uses
 * node:net (deno_node_net.ts), as it did before.
 */
import { isIP } from "node:net";
import process from "node:process";
import { keepAccepting } from "./accept_rearm.ts";
import { connectionChurn } from "./deno_memory.ts";
import { streamBinding } from "./node_handle_io.ts";
import { type TcpHandle, TcpHandleConn } from "./tcp_handle_conn.ts";
import type { Listener, ListenOptions, TransportConn } from "./types.ts";

const BACKLOG = 511; // node:net's default

interface ServerHandle {
  bind(host: string, port: number): number;
  bind6(host: string, port: number, flags: number): number;
  bindWithFlags(host: string, port: number, flags: number, ipv6: boolean): number;
  listen(backlog: number): number;
  accept(client: TcpHandle): number;
  getsockname(out: { port?: number }): number;
  close(callback?: () => void): void;
  onconnection: ((status: number) => void) | null;
}
interface TcpBinding {
  TCP: new (type: number) => ServerHandle & TcpHandle;
  constants: { SOCKET: number; SERVER: number; UV_TCP_REUSEPORT: number };
}

function tcpBinding(): TcpBinding | null {
  try {
    // deno-lint-ignore no-explicit-any
    const b = (process as any).binding("tcp_wrap") as Partial<TcpBinding> | undefined;
    const proto = b?.TCP?.prototype as Record<string, unknown> | undefined;
    const has = (m: string) => typeof proto?.[m] === "function";
    const ok = b?.constants && typeof b.constants.UV_TCP_REUSEPORT === "number" &&
      ["bind", "bind6", "bindWithFlags", "listen", "accept", "getsockname", "getpeername"]
        .every(has) &&
      ["readStart", "readStop", "useUserBuffer", "writeBuffer", "shutdown", "close"].every(has);
    return ok && streamBinding() ? b as TcpBinding : null;
  } catch {
    return null;
  }
}

/** An Error as node:net would throw it for a failed bind or listen (`code` set). */
function uvError(op: string, err: number, opts: ListenOptions): Error {
  let code = `E${-err}`;
  try {
    // deno-lint-ignore no-explicit-any
    code = (process as any).binding("uv").errname(err);
  } catch { /* keep the number */ }
  const e = new Error(`${op} ${code}: ${opts.hostname}:${opts.port}`);
  return Object.assign(e, { code });
}

/** A listener on `opts` handing out TcpHandleConns; null when this Deno cannot (see above). */
export function listenTcpHandles(
  opts: ListenOptions,
  onConn: (conn: TransportConn) => void,
): Promise<Listener> | null {
  const family = isIP(opts.hostname);
  const binding = family ? tcpBinding() : null;
  if (!binding) return null;
  const { TCP, constants } = binding;
  const server = new TCP(constants.SERVER);
  const v6 = family === 6;
  let err = opts.reusePort
    ? server.bindWithFlags(opts.hostname, opts.port, constants.UV_TCP_REUSEPORT, v6)
    : v6
    ? server.bind6(opts.hostname, opts.port, 0)
    : server.bind(opts.hostname, opts.port);
  let op = "bind";
  if (err === 0) [op, err] = ["listen", server.listen(BACKLOG)];
  if (err !== 0) {
    server.close();
    return Promise.reject(uvError(op, err, opts));
  }
  server.onconnection = (status) => {
    if (status !== 0) return; // a failed accept must not stop the server
    const handle = new TCP(constants.SOCKET);
    if (server.accept(handle) !== 0) return void handle.close();
    connectionChurn();
    handle.setNoDelay(true);
    try {
      onConn(new TcpHandleConn(handle));
    } catch {
      handle.close();
    }
  };
  const bound: { port?: number } = {};
  server.getsockname(bound);
  const stopRearm = keepAccepting(server, BACKLOG);
  let closed = false;
  return Promise.resolve({
    port: bound.port ?? opts.port,
    close() {
      stopRearm();
      if (!closed) server.close();
      closed = true;
      return Promise.resolve();
    },
  });
}
