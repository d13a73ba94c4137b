/**
 * Composition root: turns a validated config into a running broker on the
 * listeners of the runtime it is given. Runtime-free: the entry files pass the
 * Runtime in.
 */
import { hostPort } from "./runtime/address.ts";
import type { BrokerOptions } from "./broker/api.ts";
import { Broker } from "./broker/broker.ts";
import type { BrokerHooks, ClientInfo } from "./broker/hooks.ts";
import { buildPlugins, type Plugin } from "./plugins.ts";
import { type MqttxConfig, storeType } from "./config/types.ts";
import { openSqliteStore, type SqliteStore } from "./store/sqlite.ts";
import { SqliteBridgeQueue } from "./bridge/mqtt_queue_sqlite.ts";
import { RedisBridgeQueue } from "./bridge/mqtt_queue_redis.ts";
import type { Runtime } from "./runtime/types.ts";
import { type BoundListener, type Listeners, startListeners } from "./transport/listeners.ts";
import { certificateUsernameHook } from "./transport/cert_username.ts";
import type { Store, StoredState } from "./store/types.ts";
import type { RedisStore } from "./store/redis.ts";
import { restoreSessions } from "./broker/restore.ts";
import { useIoTurn } from "./broker/input_turns.ts";
import { warmUp } from "./broker/warm_up.ts";
import { sysPublishGuard } from "./sys/sys_topics.ts";
import type { ClusterNode } from "./cluster/node.ts";
import { clusterMetrics, redisMetrics } from "./http/backend_metrics.ts";
import { createLogger, type Logger } from "./log/logger.ts";
import { HealthRegistry } from "./http/health.ts";
import { MetricsRegistry } from "./http/metrics.ts";
import { type AppState, type OpsEndpoint, startOps } from "./http/ops.ts";

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
  /** The operations HTTP endpoint's bound port, when http.enable. */
  httpPort?: number;
  /** Backends register here what /health reports (see src/http/health.ts). */
  health: HealthRegistry;
  /** Backends register here their /metrics families. */
  metrics: MetricsRegistry;
  logger: Logger;
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
  /** A program embedding the broker: its hooks run before the configured plugins'. */
  hooks?: BrokerHooks[];
  /** Reload on SIGHUP (default true; an embedding program may keep the signal for itself). */
  handleSighup?: boolean;
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
  const logger = createLogger({
    level: config.log.level,
    format: config.log.format,
    write: opts.quiet ? () => {} : opts.log,
  });
  // The plugins' lines are plain text; the core's are about one client's trouble (warn).
  const log = (line: string) => logger.info("log", { msg: line });
  const coreLog = (line: string) => logger.warn("broker", { msg: line });
  const health = new HealthRegistry();
  const metrics = new MetricsRegistry();
  let state: AppState = "starting";
  let ops: OpsEndpoint | undefined;
  const ports: RunningApp["ports"] = { listeners: [] };
  const version = opts.version ?? config.version;
  health.register({
    name: "listeners",
    status: () =>
      state === "ready"
        ? { ok: true, detail: ports.listeners.map((l) => l.url).join(" ") }
        : { ok: false, detail: state },
  });
  /** The broker once made: the endpoint answers before it (/ready: 503 "starting"). */
  let made: Broker | undefined;
  if (config.http.enable) {
    // First, so /ready and /health answer while the store opens and loads (a large one, a
    // slow Redis): "starting", not a refused connection a liveness probe takes for death.
    ops = await startOps(runtime, {
      http: config.http,
      broker: () => made,
      health,
      metrics,
      logger,
      state: () => state,
      listeners: () => ports.listeners,
      version,
      runtimeName: runtime.name,
    });
    logger.info("http.listening", {
      msg: `mqttx ${version} HTTP endpoint on http://${hostPort(config.http.host, ops.port)}/`,
    });
  }
  const storeKind = storeType(config);
  let opened: OpenedStore;
  try {
    opened = await openStore(config, storeKind, log);
  } catch (e) {
    state = "stopping";
    await ops?.close();
    throw e;
  }
  const { store, sqlite, redis } = opened;
  let stored = opened.stored;
  const storeName = storeKind === "redis"
    ? "redis store"
    : sqlite
    ? `SQLite store ${config.store.path}`
    : "in-memory store";

  // Plugins need the broker, the broker needs their hooks: it reads this array by reference.
  const hooks: BrokerHooks[] = [];
  const broker = made = new Broker({ ...brokerOptions(config, coreLog), hooks }, store);
  let listeners: Listeners | undefined;
  let plugins: Plugin[] = [];
  let cluster: ClusterNode | undefined;
  // SIGHUP's default action ends the process, so it is handled from before any port is logged (a
  // signal sent as soon as the port is known must find the handler), if only to say so.
  let reload: (() => Promise<void>) | undefined = undefined; // set once started
  const removeSighup = opts.handleSighup === false ? () => {} : runtime.onSignal("SIGHUP", () => {
    if (reload) void reload();
    else log("SIGHUP: still starting, nothing reloaded");
  });
  // One order for a failed start and for stop(): no new clients, plugins (bridges) off,
  // clients closed while the cluster still hears of it, then the cluster, then /health last
  // (load balancers see "stopping" until the end).
  const teardown = async () => {
    removeSighup();
    await listeners?.close();
    await stopPlugins(plugins);
    await broker.close();
    await cluster?.stop();
    await ops?.close();
  };
  if (redis) {
    const store = redis;
    health.register({
      name: "redis",
      status: () =>
        store.connected ? { ok: true, detail: "connected" } : {
          ok: false,
          detail: `${store.answering ? "unreachable" : "not answering"}: ` +
            "persistent deliveries are not acknowledged",
        },
    });
    metrics.register((m) => redisMetrics(m, store));
  }
  try {
    plugins = await buildPlugins({
      config,
      broker,
      log,
      readTextFile: (path) => runtime.readTextFile(path),
      version,
      health,
      metrics,
      // In the SQLite file or in Redis, a bridge's queue survives a restart.
      bridgeQueue: sqlite
        ? (b) => new SqliteBridgeQueue(sqlite.file, b.name, b.queueMax)
        : redis && ((b) => RedisBridgeQueue.open(redis.client, b.name, b.queueMax)),
    });
    // The certificate's CN becomes the username before any plugin sees the client.
    if (config.ssl.useCnAsUsername) hooks.push(certificateUsernameHook());
    if (opts.hooks) hooks.push(...opts.hooks);
    for (const p of plugins) hooks.push(p.hooks);
    if (config.cluster.enable) {
      const { startCluster } = await import("./cluster/start.ts");
      const node = cluster = await startCluster(
        config,
        broker,
        redis!,
        log,
        (path) => runtime.readTextFile(path),
        { health, metrics, sys: config.sysTopic.enable },
      );
      metrics.register((m) => clusterMetrics(m, node));
      hooks.push(cluster.hooks());
      if (cluster.extra.hooks) hooks.push(cluster.extra.hooks);
      if (stored) stored = await cluster.ownSessions(stored);
    }
    if (logger.enabled("debug")) hooks.push(clientEventLog(logger));
    if (stored) {
      const n = restoreSessions(broker, stored);
      log(
        `${storeKind}: ${n.sessions} sessions restored (${n.queued} queued, ${n.inflight} in flight` +
          `, ${n.expired} expired), ${store!.retainedCount()} retained messages`,
      );
    }
    // Routes of restored sessions are announced once they are back in the index.
    cluster?.announceRestored();
    useIoTurn(runtime.ioTurn, runtime.ioTurnPolls);
    // Last before the ports open: nothing the broker does at start runs after it to compete with
    // the compilers it set off.
    if (config.warmUp) await warmUpPath(config, logger, runtime);
    listeners = await startListeners({
      runtime,
      config,
      onConn: (conn, listener) => broker.handleConnection(conn, listener),
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
      logger.info("listening", {
        msg: `mqttx ${version} listening on ${b.url} (${runtime.name}, ${storeName})`,
      });
    }
    if (bound.length === 0) {
      log(`mqttx ${version} started with no listener enabled (socket.enable is false)`);
    }
  } catch (e) {
    state = "stopping";
    await teardown();
    throw e;
  }
  state = "ready";

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
    httpPort: ops?.port,
    health,
    metrics,
    logger,
    reloadCertificates: () => started.reloadCertificates(),
    reload,
    stop() {
      state = "stopping"; // /ready answers 503 from now on; /health too
      return stopping ??= teardown();
    },
  };
}

/**
 * `warm-up: true`: src/broker/warm_up.ts, on a broker made as the real one is. Only an
 * optimisation: a failure is logged and the broker starts without it.
 */
async function warmUpPath(config: MqttxConfig, logger: Logger, runtime: Runtime): Promise<void> {
  const started = performance.now();
  try {
    // The hooks every configuration has (the $SYS guard), none with effects outside that broker.
    const done = await warmUp(brokerOptions(config, () => {}), [sysPublishGuard()]);
    logger.debug("warm-up", { ...done, ms: Math.round(performance.now() - started) });
    runtime.collectGarbage?.(); // its garbage, before the idle broker's memory is looked at
  } catch (e) {
    logger.warn("warm-up", { msg: `warm-up failed, starting without it: ${e}` });
  }
}

/** log.level debug: one line per client connect and disconnect, with its fields. */
function clientEventLog(logger: Logger): BrokerHooks {
  const fields = (c: ClientInfo) => ({
    clientId: c.clientId,
    username: c.username,
    address: c.remoteAddr,
    protocolVersion: c.protocolVersion,
  });
  return {
    onConnected: (c) => logger.debug("client.connected", fields(c)),
    onDisconnected: (c) => logger.debug("client.disconnected", fields(c)),
  };
}

interface OpenedStore {
  store: Store | undefined;
  sqlite: SqliteStore | undefined;
  redis: RedisStore | undefined;
  stored: StoredState | undefined;
}

/** The store (store.type, else enable-test-mode: true memory, false Redis) and what it holds. */
async function openStore(
  config: MqttxConfig,
  storeKind: ReturnType<typeof storeType>,
  log: (line: string) => void,
): Promise<OpenedStore> {
  let store: Store | undefined;
  let sqlite: SqliteStore | undefined;
  let redis: RedisStore | undefined;
  let stored: StoredState | undefined;
  if (storeKind === "redis") {
    // Loaded only here: the other modes do not pay for the Redis client at start.
    const { RedisStore } = await import("./store/redis.ts");
    store = redis = await RedisStore.open({ ...config.redis, log });
  } else if (storeKind === "sqlite") {
    store = sqlite = openSqlite(config);
  }
  if (store?.sessions) {
    try {
      stored = await store.sessions.load();
    } catch (e) {
      await store.close();
      // A file it opened but cannot read (another program's, damaged) is named as one it
      // cannot open is.
      if (sqlite) {
        throw new Error(`store.path: cannot read the SQLite file ${config.store.path}: ${e}`);
      }
      throw e;
    }
  }
  return { store, sqlite, redis, stored };
}

function openSqlite(config: MqttxConfig): SqliteStore {
  try {
    return openSqliteStore({ path: config.store.path, synchronous: config.store.synchronous });
  } catch (e) {
    throw new Error(`store.path: cannot open the SQLite file ${config.store.path}: ${e}`);
  }
}

async function stopPlugins(plugins: Plugin[]): Promise<void> {
  for (const p of plugins) await p.stop?.();
}
