/**
 * The connection contract, on the side of its consumer (the core): one read
 * path (`start` hands bytes to callbacks) and one write path (`write`). The
 * runtime adapters implement it directly for TCP and TLS; a Web-stream pair
 * (`StreamConn`, what embedders and some adapters have) is adapted to it at
 * the edge by `connFromStreams` (src/broker/stream_conn.ts), so the core and
 * the tests run the same path as production TCP.
 */

/** A verified TLS client certificate. */
export interface PeerCertificate {
  subject: string;
  commonName?: string;
  fingerprint256?: string;
}

export interface Conn {
  /** "ip:port" of the peer, for logs and $SYS presence events. */
  readonly remoteAddr: string;
  /** The verified TLS client certificate, when the listener asked for one. */
  readonly peerCertificate?: PeerCertificate;
  /** Close both directions now; safe to call twice. */
  close(): void;
  /**
   * Optional half-close: send what is queued, then end our side (TCP FIN)
   * while input keeps arriving, so the peer can read our last packets. The
   * caller calls `close()` once the input ended or it stops waiting.
   */
  endWrite?(): void;
  /** Deliver bytes to `callbacks` from now on. The receiver owns each chunk. */
  start(callbacks: ConnCallbacks): void;
  /**
   * Send the first `length` bytes of `bytes` (all of them when omitted: the
   * core passes its output buffer and a length rather than make a view per
   * write). Return nothing when they were fully handed to the OS, or a promise
   * that settles once they were (until then the caller keeps `bytes`
   * untouched); reject when the peer is gone.
   */
  write(bytes: Uint8Array, length?: number): void | Promise<void>;
}

export interface ConnCallbacks {
  /** Bytes arrived. A returned promise means: stop reading until it settles (backpressure). */
  data(chunk: Uint8Array): void | Promise<void>;
  /**
   * The peer closed, or the socket failed. Called once. `why`: the transport closed it for what
   * the peer sent (a WebSocket protocol error, input over its bound); the broker logs it.
   */
  end(why?: string): void;
}

/** A connection as a pair of Web streams. */
export interface StreamConn {
  readonly readable: ReadableStream<Uint8Array>;
  readonly writable: WritableStream<Uint8Array>;
  readonly remoteAddr: string;
  readonly peerCertificate?: PeerCertificate;
  close(): void;
  /** Optional half-close, as `Conn.endWrite`. */
  endWrite?(): void;
  /**
   * Why the transport ended the input, when it closed the connection for what the peer sent (a
   * WebSocket protocol error, input over its bound); read once the input ended, and logged.
   */
  readonly closeReason?: string;
}
