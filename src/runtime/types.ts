/**
 * The contract between the runtime-free core and each runtime adapter. The
 * connection contract itself lives with its consumer (src/broker/conn.ts).
 */
import type { HelperThreadRule } from "./helper_threads.ts";
import type { Conn, ConnCallbacks, PeerCertificate, StreamConn } from "../broker/conn.ts";

export type { ConnCallbacks, PeerCertificate };

/**
 * What an adapter hands over for each connection: a Web-stream pair, plus the
 * core's callback path (`start` + `write`, and `endWrite`) where the adapter
 * has it, which the core then uses instead of the streams.
 */
export type TransportConn = StreamConn & Partial<Pick<Conn, "start" | "write" | "endWrite">>;

export interface Listener {
  /** The bound port (useful when listening on port 0). */
  readonly port: number;
  /** Stop accepting; existing connections are not touched. */
  close(): Promise<void>;
}

export interface ListenOptions {
  hostname: string;
  port: number;
  /** Told why a connection was closed before it was handed over (handshake, certificate). */
  log?: (line: string) => void;
  /** SO_REUSEPORT: other processes may bind the same port; Linux spreads new connections. */
  reusePort?: boolean;
}

/** A server certificate (with its chain) and key, PEM; `ca` verifies client certificates. */
export interface TlsCredentials {
  cert: string;
  key: string;
  ca?: string;
}

/**
 * NONE: no client certificate asked for. OPTIONAL: asked for; none is fine,
 * one that does not verify against `ca` is refused. REQUIRE: a verified one
 * is needed.
 */
export type ClientAuth = "NONE" | "OPTIONAL" | "REQUIRE";

export interface TlsListenOptions extends ListenOptions {
  credentials: TlsCredentials;
  clientAuth: ClientAuth;
}

export interface TlsListener extends Listener {
  /** New connections use these credentials from now on; open ones are not touched. */
  setCredentials(credentials: TlsCredentials): Promise<void>;
}

/** Answers one HTTP request (the operations endpoint, src/http/): runtime-free code. */
export type HttpHandler = (req: Request) => Response | Promise<Response>;

/** What an entry file hands to the composition root. */
export interface Runtime {
  readonly name: "deno" | "bun";
  listen(opts: ListenOptions, onConn: (conn: TransportConn) => void): Promise<Listener>;
  /** A TLS listener; `Conn.peerCertificate` is set when a client certificate was verified. */
  listenTls(opts: TlsListenOptions, onConn: (conn: TransportConn) => void): Promise<TlsListener>;
  /** Returns a function that removes the handler again. */
  onSignal(signal: "SIGINT" | "SIGTERM" | "SIGHUP", handler: () => void): () => void;
  exit(code: number): never;
  args(): string[];
  readTextFile(path: string): Promise<string>;
  readFile(path: string): Promise<Uint8Array>;
  /** Write (replace) a text file; `mode` (e.g. 0o600) applies when the file is created. */
  writeTextFile(path: string, data: string, opts?: { mode?: number }): Promise<void>;
  env(name: string): string | undefined;
  /**
   * The runtime's helper threads (by name, as Linux shows them) that yield to
   * the event loop, and how (see helper_threads.ts).
   */
  readonly helperThreads: readonly HelperThreadRule[];
  /**
   * A function that puts one thread (Linux tid) in SCHED_BATCH and throws when refused, or
   * undefined where the runtime cannot call libc (no FFI permission, not Linux, not glibc).
   */
  threadBatch?(): ((tid: number) => void) | undefined;
  /**
   * A function that puts one thread in SCHED_IDLE (true) or back in SCHED_OTHER (false) and
   * throws when refused, or undefined where the runtime cannot call libc (idle_helpers.ts).
   */
  threadIdle?(): ((tid: number, idle: boolean) => void) | undefined;
  /**
   * Run `f` on a later macrotask, after the event loop has polled its sockets. Absent: a
   * `setImmediate` does that (Bun, like Node, polls every tick). The core's fair input turns
   * use it while a subscriber waits on its acknowledgements (broker/input_turns.ts).
   */
  ioTurn?(f: () => void): void;
  /**
   * True while `ioTurn` really waits for a poll (Deno: its loopback pairs are open, which a
   * listener opens); false while it falls back to `setImmediate` (no listener: embedded on
   * stream pairs). The tighter input budget pays only in the first case.
   */
  ioTurnPolls?(): boolean;
  /**
   * A full garbage collection now, where the runtime offers one (Bun). Called once after the
   * start-up warm-up (its garbage and the heap it grew: ~8 MB of the single binary's idle RSS).
   * Absent on Deno, which collects and trims once shortly after start anyway (deno_memory.ts).
   */
  collectGarbage?(): void;
}
