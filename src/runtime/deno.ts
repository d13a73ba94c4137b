/**
 * Deno adapter: Deno.listen for TCP; each accepted socket becomes a DenoConn
 * (deno_conn.ts), which offers the callback path besides Deno's Web streams.
 *
 * ws:// is the project's RFC 6455 server (transport/websocket_server.ts) on
 * a TCP listener, as wss:// is on TLS. Not `Deno.serve` + `upgradeWebSocket`:
 * it cannot pause reading (a held-back client's input grew without bound),
 * buffers whole messages with no size setting (64 MiB frames), accepts
 * unmasked client frames (RFC 6455 5.1: close 1002), and left the socket of
 * a peer that ignores the close frame open; none of that can be configured.
 */
import type { Listener, ListenOptions, Runtime, TransportConn } from "./types.ts";
import { DenoConn } from "./deno_conn.ts";
import { listenNodeTls } from "./tls_deno.ts";
import { serveDenoHttp } from "./http_deno.ts";

function listenSync(opts: ListenOptions, onConn: (conn: TransportConn) => void): Listener {
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
        onConn(new DenoConn(conn));
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

// The Promise constructor turns a bind error (EADDRINUSE) into a rejection.
const listen = (opts: ListenOptions, onConn: (conn: TransportConn) => void): Promise<Listener> =>
  new Promise((resolve) => resolve(listenSync(opts, onConn)));

export const denoRuntime: Runtime = {
  name: "deno",
  listen,
  listenTls: listenNodeTls,
  // No listenWebSocket: Deno's own WebSocket can neither pause reads, bound a message, nor
  // refuse an unmasked frame, so ws:// is the project's server over listen() (transport/).
  serveHttp: serveDenoHttp,
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
  // V8's worker threads also do parallel GC work the main thread waits for;
  // lowering them made no measurable difference to latency, so they stay.
  helperThreads: [],
};
