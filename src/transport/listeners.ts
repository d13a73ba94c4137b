/**
 * Every listener the configuration asks for, started on the runtime's
 * adapters: `socket` (TCP, or TLS when `ssl.enable`), `websocket` (ws, or wss
 * when `ssl.enable`) and each `listeners` item (tcp/tls/ws/wss, e.g. 1883 and
 * 8883 side by side). ws and wss are our RFC 6455 server (websocket_server.ts)
 * on the runtime's TCP and TLS listeners, so wss gets client certificates and
 * reloads like mqtts. Certificates are reloaded on demand (SIGHUP) and when
 * their files change; a reload that fails keeps the old certificate.
 * Runtime-free.
 */
import type { MqttxConfig } from "../config/types.ts";
import type {
  Listener,
  ListenOptions,
  Runtime,
  TlsCredentials,
  TlsListener,
  TransportConn,
} from "../runtime/types.ts";
import { credentialFiles, loadTlsCredentials } from "./tls_credentials.ts";
import { serveWebSocketOverConn } from "./websocket_server.ts";
import { type ListenerSpec, listenerSpecs, type ListenerType } from "../config/listening.ts";

export interface BoundListener {
  type: ListenerType;
  host: string;
  port: number;
  /** e.g. mqtts://0.0.0.0:8883 or ws://0.0.0.0:8083/mqtt */
  url: string;
}

export interface Listeners {
  bound: BoundListener[];
  /** Re-read the certificate; true when the TLS listeners took a new one. */
  reloadCertificates(): Promise<boolean>;
  close(): Promise<void>;
}

export interface ListenerContext {
  runtime: Runtime;
  config: MqttxConfig;
  /** `listener`: the index of the listener in start order (as in `bound`). */
  onConn: (conn: TransportConn, listener: number) => void;
  log: (line: string) => void;
  /** ms between checks of the certificate files for changes (0 = never; default 10 s). */
  certWatchInterval?: number;
}

export function listenerUrl(type: ListenerType, host: string, port: number, path: string): string {
  const h = host.includes(":") ? `[${host}]` : host;
  const scheme = { tcp: "mqtt", tls: "mqtts", ws: "ws", wss: "wss" }[type];
  return `${scheme}://${h}:${port}${type === "ws" || type === "wss" ? path : ""}`;
}

export async function startListeners(ctx: ListenerContext): Promise<Listeners> {
  const { runtime, config, log } = ctx;
  const specs = listenerSpecs(config);
  const needsTls = specs.some((s) => s.type === "tls" || s.type === "wss");
  const readFile = (path: string) => runtime.readFile(path);
  let credentials: TlsCredentials | undefined;
  if (needsTls) credentials = await loadTlsCredentials(config.ssl, readFile);

  const all: Listener[] = [];
  const tlsListeners: TlsListener[] = [];
  const bound: BoundListener[] = [];
  const clientAuth = config.ssl.clientAuth;
  try {
    for (const spec of specs) {
      const index = bound.length;
      let l: Listener;
      try {
        l = await listenOne(spec, (conn: TransportConn) => ctx.onConn(conn, index));
      } catch (e) {
        throw listenError(spec, e);
      }
      all.push(l);
      bound.push({
        type: spec.type,
        host: spec.host,
        port: l.port,
        url: listenerUrl(spec.type, spec.host, l.port, spec.path),
      });
    }
  } catch (e) {
    await Promise.all(all.map((l) => l.close()));
    throw e;
  }

  async function listenOne(
    spec: ListenerSpec,
    onConn: (conn: TransportConn) => void,
  ): Promise<Listener> {
    const opts = { hostname: spec.host, port: spec.port, log, reusePort: config.cluster.reusePort };
    switch (spec.type) {
      case "tcp":
        return await runtime.listen(opts, onConn);
      case "ws":
        return await listenWebSocket(runtime, {
          ...opts,
          path: spec.path,
          handshakeTimeout: config.heartbeat,
        }, onConn);
      case "tls":
      case "wss": {
        const wsOpts = { path: spec.path, handshakeTimeout: config.heartbeat, log };
        const t = await runtime.listenTls(
          { ...opts, credentials: credentials!, clientAuth },
          spec.type === "tls" ? onConn : (c) => serveWebSocketOverConn(c, wsOpts, onConn),
        );
        tlsListeners.push(t);
        return t;
      }
    }
  }

  // Reload: on demand (the app's SIGHUP), and on a change of the certificate files.
  let reloading: Promise<boolean> | undefined;
  let closed = false;
  const reload = async (): Promise<boolean> => {
    let next: TlsCredentials;
    try {
      next = await loadTlsCredentials(config.ssl, readFile);
      if (closed) return false; // stopped while reading: bind nothing new
      for (const t of tlsListeners) await t.setCredentials(next);
    } catch (e) {
      log(
        `TLS certificate reload failed, keeping the old one: ${e instanceof Error ? e.message : e}`,
      );
      return false;
    }
    credentials = next;
    log("TLS certificates reloaded; new connections use them");
    return true;
  };
  const reloadCertificates = () => {
    if (tlsListeners.length === 0 || closed) return Promise.resolve(false);
    reloading ??= reload().finally(() => (reloading = undefined));
    return reloading;
  };
  let timer: ReturnType<typeof setInterval> | undefined;
  if (tlsListeners.length > 0) {
    const interval = ctx.certWatchInterval ?? 10_000;
    if (interval > 0) {
      const files = credentialFiles(config.ssl);
      let seen = await snapshot(files, readFile);
      let checking = false;
      timer = setInterval(async () => {
        if (checking) return;
        checking = true;
        try {
          const now = await snapshot(files, readFile);
          if (now !== seen) {
            seen = now;
            await reloadCertificates();
          }
        } finally {
          checking = false;
        }
      }, interval);
    }
  }

  return {
    bound,
    reloadCertificates,
    async close() {
      closed = true;
      clearInterval(timer);
      await reloading; // a reload under way finishes (or gives up) before the listeners go
      await Promise.all(all.map((l) => l.close()));
    },
  };
}

/** "tcp listener 127.0.0.1:1883 (mqtt://...): port in use", whatever the runtime's wording. */
function listenError(spec: ListenerSpec, e: unknown): Error {
  const text = e instanceof Error ? e.message : String(e);
  const code = (e as { code?: string } | undefined)?.code;
  const inUse = code === "EADDRINUSE" || /in use|EADDRINUSE/i.test(text);
  const where = `${spec.type} listener ${listenerUrl(spec.type, spec.host, spec.port, spec.path)}` +
    ` (host ${spec.host}, port ${spec.port})`;
  return new Error(`${where}: ${inUse ? "port in use" : "cannot listen"} (${text})`);
}

/** The files' contents in one comparable string ("" for a file that cannot be read now). */
async function snapshot(
  files: string[],
  readFile: (path: string) => Promise<Uint8Array>,
): Promise<string> {
  const parts = await Promise.all(files.map((f) =>
    readFile(f).then((b) => {
      let h = 0;
      for (let i = 0; i < b.length; i++) h = (h * 31 + b[i]) | 0;
      return `${b.length}:${h}`;
    }, () => "")
  ));
  return parts.join("|");
}

/**
 * ws:// is the project's RFC 6455 server over a TCP listener on both runtimes, as wss:// is over
 * TLS. Not the runtimes' own servers: neither can pause a WebSocket's reads (input of a
 * held-back client grew until it was cut), Deno's buffers whole messages with no size setting
 * and takes unmasked client frames, and Bun's `serve` gives a client that sends its upgrade
 * request a byte at a time its socket for good (its idle timer restarts on every byte).
 */
export function listenWebSocket(
  runtime: Runtime,
  opts: ListenOptions & { path: string; handshakeTimeout?: number },
  onConn: (conn: TransportConn) => void,
): Promise<Listener> {
  const wsOpts = { path: opts.path, handshakeTimeout: opts.handshakeTimeout, log: opts.log };
  return runtime.listen(opts, (conn) => serveWebSocketOverConn(conn, wsOpts, onConn));
}
