/**
 * The contract between the runtime-free core and each runtime adapter.
 * A connection is a pair of Web streams; adapters (deno.ts, bun.ts) produce it.
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
}

/** What an entry file hands to the composition root. */
export interface Runtime {
  readonly name: "deno" | "bun";
  listen(opts: ListenOptions, onConn: (conn: Conn) => void): Promise<Listener>;
  onSignal(signal: "SIGINT" | "SIGTERM" | "SIGHUP", handler: () => void): void;
  exit(code: number): never;
  args(): string[];
  readTextFile(path: string): Promise<string>;
  env(name: string): string | undefined;
}
