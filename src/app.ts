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
import type { Listener, Runtime } from "./runtime/types.ts";

export interface RunningApp {
  ports: { socket?: number; websocket?: number };
  broker: Broker;
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
  if (!config.enableTestMode) {
    throw new Error(
      "enable-test-mode: false needs the Redis store, which is not built yet; " +
        "set enable-test-mode: true to run with the in-memory store",
    );
  }
  if (config.websocket.enable) {
    log("warning: websocket.enable is set but WebSocket is not supported yet; ignored");
  }
  if (config.ssl.enable) log("warning: ssl.enable is set but TLS is not supported yet; ignored");

  // Plugins need the broker, the broker needs their hooks: it reads this array by reference.
  const hooks: BrokerHooks[] = [];
  const broker = new Broker({ ...brokerOptions(config, log), hooks });
  const listeners: Listener[] = [];
  const ports: RunningApp["ports"] = {};
  const version = opts.version ?? config.version;
  let plugins: Plugin[] = [];
  try {
    plugins = await buildPlugins({
      config,
      broker,
      log,
      readTextFile: (path) => runtime.readTextFile(path),
      version,
    });
    for (const p of plugins) hooks.push(p.hooks);
    if (config.socket.enable) {
      const l = await runtime.listen(
        { hostname: config.host, port: config.socket.port },
        (conn) => broker.handleConnection(conn),
      );
      listeners.push(l);
      ports.socket = l.port;
      log(
        `mqttx ${version} listening on mqtt://${hostForUrl(config.host)}:${l.port} ` +
          `(${runtime.name}, in-memory store)`,
      );
    } else {
      log(`mqttx ${version} started with no listener enabled (socket.enable is false)`);
    }
  } catch (e) {
    await Promise.all(listeners.map((l) => l.close()));
    await stopPlugins(plugins);
    await broker.close();
    throw e;
  }

  let stopping: Promise<void> | undefined;
  return {
    ports,
    broker,
    stop() {
      stopping ??= (async () => {
        await Promise.all(listeners.map((l) => l.close()));
        await stopPlugins(plugins);
        await broker.close();
      })();
      return stopping;
    },
  };
}

async function stopPlugins(plugins: Plugin[]): Promise<void> {
  for (const p of plugins) await p.stop?.();
}

function hostForUrl(host: string): string {
  return host.includes(":") ? `[${host}]` : host;
}
