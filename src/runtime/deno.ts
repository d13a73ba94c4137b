/**
 * Deno adapter: Deno.listen for TCP; each accepted socket becomes a DenoConn
 * (deno_conn.ts), which offers the callback path besides Deno's Web streams.
 */
import type { Listener, ListenOptions, Runtime, TransportConn } from "./types.ts";
import { DenoConn } from "./deno_conn.ts";
import { listenNodeTls } from "./tls_deno.ts";
import { listenDenoWebSocket } from "./websocket_deno.ts";

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
  // V8's worker threads also do parallel GC work the main thread waits for;
  // lowering them made no measurable difference to latency, so they stay.
  helperThreads: [],
};
