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
 * The TLS socket becomes a Conn as plain TCP sockets do (node_socket_conn.ts).
 */
import { hostPort } from "./address.ts";
import * as tls from "node:tls";
import { NodeSocketConn } from "./node_socket_conn.ts";
import { connectionChurn } from "./deno_memory.ts";
import { listening } from "./deno_node_net.ts";
import type { TlsCredentials, TlsListener, TlsListenOptions, TransportConn } from "./types.ts";
import { clientCertificate, issuedByCa, parseCaBundle } from "./certs.ts";
import { escapeForLog } from "../log/escape.ts";

export function listenNodeTls(
  opts: TlsListenOptions,
  onConn: (conn: TransportConn) => void,
): Promise<TlsListener> {
  const server = tls.createServer(secureContextOptions(opts.credentials, opts));
  const log = opts.log ?? (() => {});
  let cas = parseCaBundle(opts.credentials.ca);
  server.on("secureConnection", (socket: tls.TLSSocket) => {
    connectionChurn();
    const peer = socket.getPeerCertificate();
    // rustls refuses certificates without v3 extensions; check those against the CA ourselves.
    const authorized = socket.authorized ||
      (opts.clientAuth !== "NONE" && peer?.raw !== undefined && issuedByCa(peer.raw, cas));
    const cert = clientCertificate(opts.clientAuth, authorized, peer);
    if (cert === false) {
      const why = socket.authorizationError ?? "none presented";
      log(`closing ${remote(socket)}: client certificate refused (${escapeForLog(String(why))})`);
      socket.destroy();
      return;
    }
    try {
      socket.setNoDelay(true);
      onConn(new NodeSocketConn(socket, cert));
    } catch {
      socket.destroy();
    }
  });
  // A failed handshake (bad or missing client certificate, plain TCP client) ends that socket only.
  server.on("tlsClientError", (e: Error, socket: tls.TLSSocket) => {
    log(`closing ${remote(socket)}: TLS handshake failed (${escapeForLog(e.message)})`);
  });
  return listening(server, opts).then((listener) => ({
    ...listener,
    setCredentials(credentials) {
      server.setSecureContext(secureContextOptions(credentials, opts));
      cas = parseCaBundle(credentials.ca);
      return Promise.resolve();
    },
  }));
}

function remote(socket: tls.TLSSocket): string {
  return hostPort(socket.remoteAddress ?? "unknown", socket.remotePort ?? 0);
}

function secureContextOptions(c: TlsCredentials, opts: TlsListenOptions): tls.TlsOptions {
  return {
    cert: c.cert,
    key: c.key,
    ca: c.ca,
    requestCert: opts.clientAuth !== "NONE",
    // Checked after the handshake (clientCertificate), where a certificate rustls cannot
    // verify (X.509 v1) gets our own check; Deno's rejectUnauthorized hangs such a client up.
    rejectUnauthorized: false,
  };
}
