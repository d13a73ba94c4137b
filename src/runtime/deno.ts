/**
 * Deno adapter: Deno.Conn already exposes Web streams, so a Conn is a thin
 * wrapper that adds "ip:port" and an idempotent close.
 */
import type { Conn, Listener, ListenOptions, Runtime } from "./types.ts";
import { listenNodeTls } from "./tls_deno.ts";
import { listenDenoWebSocket } from "./websocket_deno.ts";

function addr(a: Deno.Addr): string {
  if (a.transport !== "tcp" && a.transport !== "udp") return String(a.transport);
  return a.hostname.includes(":") ? `[${a.hostname}]:${a.port}` : `${a.hostname}:${a.port}`;
}

function wrapConn(conn: Deno.TcpConn): Conn {
  let closed = false;
  try {
    conn.setNoDelay(true);
  } catch { /* the peer may already be gone */ }
  return {
    readable: conn.readable,
    writable: conn.writable,
    remoteAddr: addr(conn.remoteAddr),
    close() {
      if (closed) return;
      closed = true;
      try {
        conn.close();
      } catch { /* already closed by a stream reaching its end */ }
    },
  };
}

function listenSync(opts: ListenOptions, onConn: (conn: Conn) => void): Listener {
  const listener = Deno.listen({ hostname: opts.hostname, port: opts.port, transport: "tcp" });
  let stopped = false;
  const loop = (async () => {
    while (!stopped) {
      let conn: Deno.TcpConn;
      try {
        conn = await listener.accept();
      } catch (e) {
        if (stopped || e instanceof Deno.errors.BadResource) return;
        // A failed accept (e.g. EMFILE, peer reset) must not stop the server.
        await new Promise((r) => setTimeout(r, 10));
        continue;
      }
      try {
        onConn(wrapConn(conn));
      } catch {
        try {
          conn.close();
        } catch { /* ignore */ }
      }
    }
  })();
  return {
    port: (listener.addr as Deno.NetAddr).port,
    async close() {
      if (stopped) return;
      stopped = true;
      try {
        listener.close();
      } catch { /* already closed */ }
      await loop;
    },
  };
}

export const denoRuntime: Runtime = {
  name: "deno",
  // The Promise constructor turns a bind error (EADDRINUSE) into a rejection.
  listen: (opts, onConn) => new Promise((resolve) => resolve(listenSync(opts, onConn))),
  listenTls: listenNodeTls,
  listenWebSocket: listenDenoWebSocket,
  onSignal(signal, handler) {
    Deno.addSignalListener(signal, handler);
    return () => Deno.removeSignalListener(signal, handler);
  },
  exit(code: number): never {
    Deno.exit(code);
  },
  args: () => [...Deno.args],
  readTextFile: (path) => Deno.readTextFile(path),
  readFile: (path) => Deno.readFile(path),
  writeTextFile: (path, data, opts) => Deno.writeTextFile(path, data, { mode: opts?.mode }),
  env: (name) => Deno.env.get(name),
};
