/**
 * Deno adapter: plain TCP and TLS on Deno's `node:net`/`node:tls` (deno_node_net.ts says why
 * not `Deno.listen`), WebSocket on `Deno.serve`.
 */
import type { Runtime } from "./types.ts";
import { listenNodeTls } from "./tls_deno.ts";
import { listenDenoWebSocket } from "./websocket_deno.ts";
import { listenNodeNet } from "./deno_node_net.ts";

export const denoRuntime: Runtime = {
  name: "deno",
  listen: listenNodeNet,
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
