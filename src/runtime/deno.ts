/**
 * Deno adapter: plain TCP on the native TCP handles of Deno's `node:net` (tcp_handles.ts; on
 * node:net itself where those cannot be used), TLS on `node:tls` (deno_node_net.ts says why not
 * `Deno.listen`).
 *
 * ws:// is the project's RFC 6455 server (transport/websocket_server.ts) on
 * a TCP listener, as wss:// is on TLS. Not `Deno.serve` + `upgradeWebSocket`:
 * it cannot pause reading (a held-back client's input grew without bound),
 * buffers whole messages with no size setting (64 MiB frames), accepts
 * unmasked client frames (RFC 6455 5.1: close 1002), and left the socket of
 * a peer that ignores the close frame open; none of that can be configured.
 */
import type { Listener, Runtime, TransportConn } from "./types.ts";
import { listenNodeNet } from "./deno_node_net.ts";
import { listenNodeTls } from "./tls_deno.ts";
import { denoThreadBatch } from "./sched_batch_deno.ts";
import { closeIoTurn, ioTurn, ioTurnPolls, openIoTurn } from "./io_turn_deno.ts";

/** A listener keeps the I/O turn's sockets open while it lives (io_turn_deno.ts). */
function withIoTurn<O, L extends Listener>(
  listen: (opts: O, onConn: (conn: TransportConn) => void) => Promise<L>,
): (opts: O, onConn: (conn: TransportConn) => void) => Promise<L> {
  return async (opts, onConn) => {
    await openIoTurn();
    let listener: L;
    try {
      listener = await listen(opts, onConn);
    } catch (e) {
      await closeIoTurn();
      throw e;
    }
    const close = listener.close.bind(listener);
    let closed = false;
    listener.close = async () => {
      await close();
      if (!closed) {
        closed = true;
        await closeIoTurn();
      }
    };
    return listener;
  };
}

export const denoRuntime: Runtime = {
  name: "deno",
  listen: withIoTurn(listenNodeNet),
  listenTls: withIoTurn(listenNodeTls),
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
  // V8's workers compile and help the GC. A lower nice value cost a fresh broker's bursts
  // (the compilers starve), so only SCHED_BATCH: they no longer preempt the event loop.
  helperThreads: [{ prefix: "V8 DefaultWorke", batch: true }],
  threadBatch: denoThreadBatch,
  ioTurn,
  ioTurnPolls,
};
