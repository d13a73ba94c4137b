/**
 * The contract between the runtime-free core and each runtime adapter.
 * A connection is a pair of Web streams; adapters (deno.ts, bun.ts) produce it.
 *
 * An adapter may also offer the callback path (`start` + `write`): the core
 * then uses it instead of the streams, which cost memory and time per
 * connection on some runtimes. Both paths carry the same bytes.
 */
export interface Conn {
  readonly readable: ReadableStream<Uint8Array>;
  readonly writable: WritableStream<Uint8Array>;
  /** "ip:port" of the peer, for logs and $SYS presence events. */
  readonly remoteAddr: string;
  /** The verified TLS client certificate, when the listener asked for one. */
  readonly peerCertificate?: { subject: string; commonName?: string; fingerprint256?: string };
  /** Close both directions now; safe to call twice. */
  close(): void;
  /**
   * Optional half-close: send what is queued, then end our side (TCP FIN)
   * while input keeps arriving, so the peer can read our last packets. The
   * caller calls `close()` once the input ended or it stops waiting.
   */
  endWrite?(): void;
  /**
   * Callback path, input: deliver bytes to `callbacks` from now on (the
   * streams are then never read). The receiver owns each chunk.
   */
  start?(callbacks: ConnCallbacks): void;
  /**
   * Callback path, output: send the first `length` bytes of `bytes` (all of
   * them when omitted: the core passes its output buffer and a length rather
   * than make a view per write). Return nothing when they were fully handed
   * to the OS, or a promise that settles once they were (until then the
   * caller keeps `bytes` untouched); reject when the peer is gone.
   */
  write?(bytes: Uint8Array, length?: number): void | Promise<void>;
}

export interface ConnCallbacks {
  /** Bytes arrived. A returned promise means: stop reading until it settles (backpressure). */
  data(chunk: Uint8Array): void | Promise<void>;
  /** The peer closed, or the socket failed. Called once. */
  end(): void;
}

export interface Listener {
  /** The bound port (useful when listening on port 0). */
  readonly port: number;
  /** Stop accepting; existing connections are not touched. */
  close(): Promise<void>;
}

export interface ListenOptions {
  hostname: string;
  port: number;
  /** Told why a connection was closed before it became a Conn (handshake, certificate). */
  log?: (line: string) => void;
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

export interface WebSocketListenOptions extends ListenOptions {
  /** URL path of the MQTT endpoint ("/mqtt"); other paths get 404. */
  path: string;
  /**
   * Largest WebSocket message accepted (a larger one closes the connection
   * with 1009), where the runtime buffers whole messages (Bun's ws://).
   */
  maxMessageBytes?: number;
}

/** Answers one HTTP request (the operations endpoint, src/http/): runtime-free code. */
export type HttpHandler = (req: Request) => Response | Promise<Response>;

/** What an entry file hands to the composition root. */
export interface Runtime {
  readonly name: "deno" | "bun";
  listen(opts: ListenOptions, onConn: (conn: Conn) => void): Promise<Listener>;
  /** A TLS listener; `Conn.peerCertificate` is set when a client certificate was verified. */
  listenTls(opts: TlsListenOptions, onConn: (conn: Conn) => void): Promise<TlsListener>;
  /**
   * A plain-HTTP WebSocket listener (ws://) speaking the "mqtt" subprotocol;
   * each upgraded WebSocket is a Conn of MQTT bytes. Optional: without it
   * (Deno), ws:// is the project's own server over `listen` (transport/).
   */
  listenWebSocket?(opts: WebSocketListenOptions, onConn: (conn: Conn) => void): Promise<Listener>;
  /**
   * A plain HTTP server on the runtime's own (`Deno.serve`, `Bun.serve`).
   * close() stops it and ends its open requests.
   */
  serveHttp(opts: ListenOptions, handler: HttpHandler): Promise<Listener>;
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
   * Names (as Linux shows them) of the runtime's helper threads that may run
   * at a lower priority than the event loop (see helper_threads.ts).
   */
  readonly helperThreads: readonly string[];
}
