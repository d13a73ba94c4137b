/**
 * TLS listener for Deno, on Deno's `node:tls`.
 *
 * Why not `Deno.listenTls`/`Deno.serve({ cert, key })`: they take only
 * cert/key/ALPN, so they cannot ask for, verify or report client
 * certificates (unknown options are silently ignored), and they cannot swap
 * the certificate of a listening socket (rebinding the port without a gap
 * needs `reusePort`, which is `--unstable-net`). Deno's `node:tls` is a
 * supported API that does both: `requestCert`/`ca`/`rejectUnauthorized` with
 * `getPeerCertificate()`, and `server.setSecureContext()` for reloads.
 *
 * The node socket (a Duplex) becomes a Conn the same way bun.ts does it:
 * `data` feeds a ReadableStream and the socket is paused while the stream's
 * queue is full; a write that the socket buffers waits for `drain`.
 */
import { hostPort } from "./address.ts";
import * as tls from "node:tls";
import type {
  PeerCertificate,
  TlsCredentials,
  TlsListener,
  TlsListenOptions,
  TransportConn,
} from "./types.ts";
import { clientCertificate } from "./certs.ts";

const READ_HIGH_WATER = 64 * 1024;

export function listenNodeTls(
  opts: TlsListenOptions,
  onConn: (conn: TransportConn) => void,
): Promise<TlsListener> {
  const server = tls.createServer(secureContextOptions(opts.credentials, opts));
  server.on("secureConnection", (socket: tls.TLSSocket) => {
    const cert = clientCertificate(opts.clientAuth, socket.authorized, socket.getPeerCertificate());
    if (cert === false) {
      socket.destroy();
      return;
    }
    try {
      socket.setNoDelay(true);
      onConn(wrapSocket(socket, cert));
    } catch {
      socket.destroy();
    }
  });
  // A failed handshake (bad or missing client certificate, plain TCP client) ends that socket only.
  server.on("tlsClientError", () => {});
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen({ host: opts.hostname, port: opts.port }, () => {
      server.off("error", reject);
      server.on("error", () => {});
      const port = (server.address() as { port: number }).port;
      let closed = false;
      resolve({
        port,
        setCredentials(credentials) {
          server.setSecureContext(secureContextOptions(credentials, opts));
          return Promise.resolve();
        },
        close() {
          // Stop accepting; live connections stay with their owners.
          if (!closed) server.close();
          closed = true;
          return Promise.resolve();
        },
      });
    });
  });
}

function secureContextOptions(c: TlsCredentials, opts: TlsListenOptions): tls.TlsOptions {
  return {
    cert: c.cert,
    key: c.key,
    ca: c.ca,
    requestCert: opts.clientAuth !== "NONE",
    rejectUnauthorized: opts.clientAuth === "REQUIRE",
  };
}

function wrapSocket(socket: tls.TLSSocket, cert: PeerCertificate | undefined): TransportConn {
  let closed = false;
  let paused = false;
  let drainWaiter: { resolve(): void; reject(e: Error): void } | undefined;
  const closedError = () => new Error("Cannot write: connection closed");

  const readable = new ReadableStream<Uint8Array>({
    start(controller) {
      socket.on("data", (chunk: Uint8Array) => {
        if (closed) return;
        controller.enqueue(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength));
        if ((controller.desiredSize ?? 1) <= 0 && !paused) {
          paused = true;
          socket.pause();
        }
      });
      const end = (err?: Error) => {
        if (closed) return;
        closed = true;
        drainWaiter?.reject(err ?? closedError());
        drainWaiter = undefined;
        try {
          if (err) controller.error(err);
          else controller.close();
        } catch { /* the reader already cancelled */ }
      };
      socket.on("end", () => end());
      socket.on("close", () => end());
      socket.on("error", (e: Error) => end(e));
    },
    pull() {
      if (paused && !closed) {
        paused = false;
        socket.resume();
      }
    },
    cancel() {
      socket.destroy();
    },
  }, { highWaterMark: READ_HIGH_WATER, size: (chunk) => chunk.byteLength });

  socket.on("drain", () => {
    const w = drainWaiter;
    drainWaiter = undefined;
    w?.resolve();
  });

  const writable = new WritableStream<Uint8Array>({
    write(chunk) {
      if (closed || socket.destroyed) return Promise.reject(closedError());
      if (socket.write(chunk)) return;
      return new Promise<void>((resolve, reject) => (drainWaiter = { resolve, reject }));
    },
    close() {
      socket.end();
    },
    abort() {
      socket.destroy();
    },
  });

  const host = socket.remoteAddress ?? "unknown";
  return {
    readable,
    writable,
    remoteAddr: hostPort(host, socket.remotePort ?? 0),
    peerCertificate: cert,
    close() {
      if (socket.destroyed) return;
      // Flush what is written, then close both directions.
      socket.end(() => socket.destroy());
    },
  };
}
