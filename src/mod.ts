/**
 * mqttx as a library: a program embeds the broker, gives it a config object,
 * its own hooks (authentication, authorization, message observers), and
 * connections from its own listeners or any stream pair; it publishes and
 * subscribes in-process and closes it. Runtime-free: the program passes the
 * runtime adapter (`mqttx/deno` or `mqttx/bun`).
 *
 * ```ts
 * import { createBroker } from "mqttx";
 * import { denoRuntime } from "mqttx/deno";
 * const mqtt = await createBroker({
 *   runtime: denoRuntime,
 *   config: { socket: { enable: false } },          // only what we attach ourselves
 *   hooks: [{
 *     authenticate: (client, connect) =>
 *       connect.username === "gw" ? { ok: true } : { ok: false, reasonCode: 0x86 },
 *   }],
 * });
 * mqtt.subscribe("sensors/#", (m) => console.log(m.topic, new TextDecoder().decode(m.payload)));
 * mqtt.attachStreams(readable, writable, "10.0.0.5:40000");    // e.g. an upgraded WebSocket
 * await mqtt.publish("commands/all", "reboot", { qos: 1 });
 * await mqtt.close();
 * ```
 */
import { type RunningApp, startApp } from "./app.ts";
import type { Broker } from "./broker/broker.ts";
import type { BrokerHooks } from "./broker/hooks.ts";
import { LocalClient, type LocalPublishOptions } from "./broker/local_client.ts";
import { defaultConfig } from "./config/schema.ts";
import type { MqttxConfig } from "./config/types.ts";
import { levels, matchesTopic } from "./acl/filters.ts";
import { topicFilterError } from "./mqtt/topic.ts";
import type { QoS } from "./mqtt/packet.ts";
import type { Runtime } from "./runtime/types.ts";
import type { Conn as CallbackConn, StreamConn } from "./broker/conn.ts";
import { streamConn } from "./stream_conn.ts";

export type {
  AuthDecision,
  BrokerHooks,
  ClientInfo,
  EnhancedAuthenticator,
} from "./broker/hooks.ts";
export type { MqttxConfig } from "./config/types.ts";
export type { Runtime } from "./runtime/types.ts";
export type { ConnCallbacks, StreamConn } from "./broker/conn.ts";
/** What `attach` takes: the callback contract (src/broker/conn.ts), or a Web-stream pair. */
export type Conn = CallbackConn | StreamConn;
export type { ConnectPacket, QoS } from "./mqtt/packet.ts";
export type { HealthSource } from "./http/health.ts";
export { webSocketConn } from "./websocket_conn.ts";
export { streamConn } from "./stream_conn.ts";

/** Any part of the configuration; the rest keeps its default (config.example.yml). */
export type PartialConfig = { [K in keyof MqttxConfig]?: Partial<MqttxConfig[K]> };

export interface CreateBrokerOptions {
  /** The runtime adapter: `denoRuntime` from "mqttx/deno" or `bunRuntime` from "mqttx/bun". */
  runtime: Runtime;
  /** Merged over the defaults, one section deep. Listeners start as configured. */
  config?: PartialConfig;
  /** Run before the configured auth/ACL plugins: the first refusal wins. */
  hooks?: BrokerHooks[];
  /** Where log lines go (default console.log); `quiet` for none. */
  log?: (line: string) => void;
  quiet?: boolean;
  /** Reload certificates and the password file on SIGHUP (default false when embedded). */
  handleSighup?: boolean;
}

/** A message as an in-process subscriber sees it. */
export interface InProcessMessage {
  topic: string;
  payload: Uint8Array;
  qos: QoS;
  retain: boolean;
  /** The publishing client's id (the broker's own clients start with `$`). */
  from?: string;
}

export interface EmbeddedBroker {
  /** The engine itself (sessions, stats), for what this API does not cover. */
  readonly broker: Broker;
  /** Bound listener ports, the HTTP endpoint's port, health and metrics registries. */
  readonly app: RunningApp;
  /** Serve a connection from the program's own listener. */
  attach(conn: Conn): void;
  /** Serve MQTT bytes arriving on `readable`, answering on `writable`. */
  attachStreams(
    readable: ReadableStream<Uint8Array>,
    writable: WritableStream<Uint8Array>,
    remoteAddr?: string,
  ): void;
  /** Add hooks after start (observers, extra rules); returns their removal. */
  addHooks(hooks: BrokerHooks): () => void;
  /** Publish as the broker's own client; resolves with the number of sessions it reached. */
  publish(
    topic: string,
    payload: Uint8Array | string,
    opts?: LocalPublishOptions,
  ): Promise<number>;
  /**
   * Observe every message accepted for a topic matching `filter` (wildcards
   * allowed), retained ones first; returns the unsubscribe function.
   */
  subscribe(filter: string, onMessage: (m: InProcessMessage) => void): () => void;
  /** Disconnect every client, stop listeners and timers. */
  close(): Promise<void>;
}

/** The listener index attached connections are counted under (/metrics: listener="attached"). */
const ATTACHED = 1023;

export async function createBroker(opts: CreateBrokerOptions): Promise<EmbeddedBroker> {
  const config = defaultConfig();
  for (const [key, value] of Object.entries(opts.config ?? {})) {
    const k = key as keyof MqttxConfig;
    const base = config[k];
    (config as unknown as Record<string, unknown>)[k] =
      base && typeof base === "object" && !Array.isArray(base) && value && typeof value === "object"
        ? { ...base, ...value }
        : value;
  }
  const app = await startApp(opts.runtime, config, {
    hooks: opts.hooks,
    log: opts.log,
    quiet: opts.quiet,
    handleSighup: opts.handleSighup ?? false,
  });
  const broker = app.broker;
  const local = new LocalClient(broker, "$embedded");
  const addHooks = (h: BrokerHooks) => {
    // Ahead of the configured plugins, like the hooks given at creation.
    broker.hooks.unshift(h);
    return () => {
      const i = broker.hooks.indexOf(h);
      if (i >= 0) broker.hooks.splice(i, 1);
    };
  };
  return {
    broker,
    app,
    attach: (conn) => broker.handleConnection(conn, ATTACHED),
    attachStreams: (readable, writable, remoteAddr) =>
      broker.handleConnection(streamConn(readable, writable, remoteAddr), ATTACHED),
    addHooks,
    publish: async (topic, payload, o) => await local.publish(topic, payload, o),
    subscribe(filter, onMessage) {
      const why = topicFilterError(filter);
      if (why) throw new Error(`filter ${JSON.stringify(filter)} ${why}`);
      const f = levels(filter);
      const remove = addHooks({
        onPublished(topic, payload, qos, retain, from) {
          if (matchesTopic(f, levels(topic))) onMessage({ topic, payload, qos, retain, from });
        },
      });
      void Promise.resolve(broker.store.matchRetained(filter)).then((kept) => {
        for (const m of kept) {
          onMessage({ topic: m.topic, payload: m.payload, qos: m.qos, retain: true, from: m.from });
        }
      });
      return remove;
    },
    close: () => app.stop(),
  };
}
