/**
 * Composition root: turns a validated config into a running broker on the
 * listeners of the runtime it is given. Runtime-free: the entry files pass the
 * Runtime in.
 */
import type { BrokerOptions } from "./broker/api.ts";
import { Broker } from "./broker/broker.ts";
import type { BrokerHooks } from "./broker/hooks.ts";
import { buildPlugins, type Plugin } from "./plugins.ts";
import type { MqttxConfig } from "./config/types.ts";
import type { Runtime } from "./runtime/types.ts";
import { type BoundListener, type Listeners, startListeners } from "./transport/listeners.ts";
import { certificateUsernameHook } from "./transport/cert_username.ts";
import type { RedisStore } from "./store/redis.ts";
import type { StoredState } from "./store/types.ts";
import { restoreSessions } from "./broker/restore.ts";
import type { ClusterNode } from "./cluster/node.ts";

export interface RunningApp {
  /**
   * Bound ports: `socket`/`websocket` are the single-port items (TLS when
   * ssl.enable), `tls`/`wss` the first listener of that kind, `listeners` all.
   */
  ports: {
    socket?: number;
    websocket?: number;
    tls?: number;
    wss?: number;
    listeners: BoundListener[];
  };
  broker: Broker;
  /** Re-read the TLS certificate (part of what SIGHUP does); true when it was taken. */
  reloadCertificates(): Promise<boolean>;
  /** What SIGHUP does: the TLS certificate and the password file, read again. */
  reload(): Promise<void>;
  /** Stop accepting, then disconnect every client. Safe to call twice. */
  stop(): Promise<void>;
}

export interface AppOptions {
  /** No log lines at all (tests). */
  quiet?: boolean;
  /** Where log lines go (default: console.log). */
  log?: (line: string) => void;
  /** Shown in the start line (the CLI passes its VERSION). */
  version?: string;
  /** ms between checks of the certificate files for changes (0 = never; default 10 s). */
  certWatchInterval?: number;
}

export function brokerOptions(config: MqttxConfig, log?: (line: string) => void): BrokerOptions {
  return {
    brokerId: config.brokerId,
    connectTimeout: config.heartbeat,
    maximumPacketSize: config.maxBytesInMessage,
    maxInflight: config.maxInflight,
    maxQueuedMessages: config.maxQueuedMessages,
    ignoreClientSelfPub: config.ignoreClientSelfPub,
    shareTopic: { enable: config.shareTopic.enable, strategy: config.shareTopic.shareSubStrategy },
    maxKeepAlive: config.maxKeepAlive,
    allowCrossUserSession: config.allowCrossUserSession,
    maxSubscriptionsPerClient: config.maxSubscriptionsPerClient,
    topicAliasMaximum: config.mqtt5.topicAliasMaximum,
    outgoingTopicAliases: config.mqtt5.outgoingTopicAliases,
    responseInformation: config.mqtt5.responseInformation,
    serverReference: config.mqtt5.serverReference
      ? { reference: config.mqtt5.serverReference, permanent: config.mqtt5.serverMoved }
      : undefined,
    log,
  };
}

export async function startApp(
  runtime: Runtime,
  config: MqttxConfig,
  opts: AppOptions = {},
): Promise<RunningApp> {
  const log = opts.quiet ? () => {} : (opts.log ?? ((line: string) => console.log(line)));
  // enable-test-mode: false keeps sessions and retained messages in Redis (src/store/redis.ts).
  let redis: RedisStore | undefined;
  let stored: StoredState | undefined;
  if (!config.enableTestMode) {
    // Loaded only here: the in-memory mode does not pay for the Redis client at start.
    const { RedisStore } = await import("./store/redis.ts");
    redis = await RedisStore.open({ ...config.redis, log });
    try {
      stored = await redis.sessions.load();
    } catch (e) {
      await redis.close();
      throw e;
    }
  }

  // Plugins need the broker, the broker needs their hooks: it reads this array by reference.
  const hooks: BrokerHooks[] = [];
  const broker = new Broker({ ...brokerOptions(config, log), hooks }, redis);
  let listeners: Listeners | undefined;
  const ports: RunningApp["ports"] = { listeners: [] };
  const version = opts.version ?? config.version;
  let plugins: Plugin[] = [];
  let cluster: ClusterNode | undefined;
  // SIGHUP's default action ends the process, so it is handled from before any port is logged (a
  // signal sent as soon as the port is known must find the handler), if only to say so.
  let reload: (() => Promise<void>) | undefined = undefined; // set once started
  const removeSighup = runtime.onSignal("SIGHUP", () => {
    if (reload) void reload();
    else log("SIGHUP: still starting, nothing reloaded");
  });
  try {
    plugins = await buildPlugins({
      config,
      broker,
      log,
      readTextFile: (path) => runtime.readTextFile(path),
      version,
    });
    // The certificate's CN becomes the username before any plugin sees the client.
    if (config.ssl.useCnAsUsername) hooks.push(certificateUsernameHook());
    for (const p of plugins) hooks.push(p.hooks);
    if (config.cluster.enable) {
      const { startCluster } = await import("./cluster/start.ts");
      cluster = await startCluster(config, broker, redis!, log);
      hooks.push(cluster.hooks());
      if (stored) stored = await cluster.ownSessions(stored);
    }
    if (stored) {
      const n = restoreSessions(broker, stored);
      log(
        `redis: ${n.sessions} sessions restored (${n.queued} queued, ${n.inflight} in flight` +
          `, ${n.expired} expired), ${redis!.retainedCount()} retained messages`,
      );
    }
    // Routes of restored sessions are announced once they are back in the index.
    cluster?.announceRestored();
    listeners = await startListeners({
      runtime,
      config,
      onConn: (conn) => broker.handleConnection(conn),
      log,
      certWatchInterval: opts.certWatchInterval,
    });
    const bound = listeners.bound;
    ports.listeners = bound;
    // The single-port items come first, in this order (see listenerSpecs).
    let at = 0;
    if (config.socket.enable) ports.socket = bound[at++].port;
    if (config.websocket.enable) ports.websocket = bound[at++].port;
    ports.tls = bound.find((b) => b.type === "tls")?.port;
    ports.wss = bound.find((b) => b.type === "wss")?.port;
    for (const b of bound) {
      const store = redis ? "redis store" : "in-memory store";
      log(`mqttx ${version} listening on ${b.url} (${runtime.name}, ${store})`);
    }
    if (bound.length === 0) {
      log(`mqttx ${version} started with no listener enabled (socket.enable is false)`);
    }
  } catch (e) {
    removeSighup();
    await listeners?.close();
    await stopPlugins(plugins);
    await cluster?.stop();
    await broker.close();
    throw e;
  }

  const started = listeners;
  const reloaders = plugins.filter((p) => p.reload);
  const hasTls = started.bound.some((b) => b.type === "tls" || b.type === "wss");
  reload = async () => {
    if (!hasTls && reloaders.length === 0) {
      log("SIGHUP: nothing to reload (no TLS listener, no password file)");
      return;
    }
    await started.reloadCertificates();
    for (const p of reloaders) await p.reload!();
  };

  let stopping: Promise<void> | undefined;
  return {
    ports,
    broker,
    reloadCertificates: () => started.reloadCertificates(),
    reload,
    stop() {
      stopping ??= (async () => {
        removeSighup();
        await listeners?.close();
        await stopPlugins(plugins);
        await broker.close();
        await cluster?.stop();
      })();
      return stopping;
    },
  };
}

async function stopPlugins(plugins: Plugin[]): Promise<void> {
  for (const p of plugins) await p.stop?.();
}
