/**
 * Turns configuration into broker hooks: authentication, topic authorization,
 * $SYS, rate limits. One place, so each feature stays in its own folder and
 * the composition root stays short. Runtime-free.
 */
import type { BridgeConfig, MqttxConfig } from "./config/types.ts";
import type { BridgeQueue } from "./bridge/mqtt_queue.ts";
import type { Broker } from "./broker/broker.ts";
import type { BrokerHooks } from "./broker/hooks.ts";
import { createAuthPlugin } from "./auth/mod.ts";
import { topicAuthorization } from "./acl/topic_auth.ts";
import { staticAcl } from "./acl/acl.ts";
import { topicRateLimiter } from "./ratelimit/rate_limiter.ts";
import { sysTopics } from "./sys/sys_topics.ts";
import type { HealthRegistry } from "./http/health.ts";
import type { MetricsRegistry } from "./http/metrics.ts";
import { mqttBridges } from "./bridge/mqtt_plugin.ts";
import { kafkaBridge } from "./bridge/kafka.ts";

export interface PluginContext {
  config: MqttxConfig;
  /** The broker the hooks serve (created before plugins are built). */
  broker: Broker;
  log: (line: string) => void;
  /** Reads a file (password file, certificates); the runtime supplies it. */
  readTextFile: (path: string) => Promise<string>;
  /** Version shown by $SYS. */
  version: string;
  /** Where a plugin with a backend (e.g. a Kafka bridge) reports its health and metrics. */
  health?: HealthRegistry;
  metrics?: MetricsRegistry;
  /** A durable outbound queue for each MQTT bridge (default: in memory). */
  bridgeQueue?: (bridge: BridgeConfig) => BridgeQueue | Promise<BridgeQueue>;
}

/** A feature that needs to stop timers or connections at shutdown, or reloads on SIGHUP. */
export interface Plugin {
  hooks: BrokerHooks;
  stop?(): void | Promise<void>;
  /** What SIGHUP does for this feature (e.g. re-read a file); true when something changed. */
  reload?(): Promise<boolean>;
}

/** Build every plugin the configuration asks for, in the order their hooks must run. */
export async function buildPlugins(ctx: PluginContext): Promise<Plugin[]> {
  const plugins: Plugin[] = [];
  // Order matters: authentication first, then authorization, then observers.
  // --- authentication (src/auth/) ---
  const auth = await createAuthPlugin(ctx.config.auth, {
    log: ctx.log,
    readTextFile: ctx.readTextFile,
    certificateIdentity: ctx.config.ssl.useCnAsUsername,
  });
  if (auth) plugins.push(auth);
  // --- topic authorization and ACL (src/acl/) ---
  // Both must allow: per-client lists from authentication, then the static rules.
  if (ctx.config.enableTopicSubPubSecure) plugins.push({ hooks: topicAuthorization() });
  if (ctx.config.acl.enable) plugins.push({ hooks: staticAcl(ctx.config.acl) });
  // --- rate limits (src/ratelimit/) ---
  if (ctx.config.rateLimiter.enable && ctx.config.rateLimiter.topicRateLimits.length > 0) {
    const drops = ctx.broker.stats.dropped;
    plugins.push({ hooks: topicRateLimiter(ctx.config.rateLimiter, { drops }) });
  }
  // --- $SYS (src/sys/) ---
  // Always: clients may never publish to $SYS; with sys-topic.enable also the topics themselves.
  plugins.push(sysTopics({
    broker: ctx.broker,
    enable: ctx.config.sysTopic.enable,
    brokerId: ctx.config.brokerId,
    version: ctx.version,
    interval: ctx.config.sysTopic.interval,
  }));
  // --- Kafka bridge (src/bridge/) ---
  if (ctx.config.messageBridge.enable) {
    plugins.push(
      await kafkaBridge(ctx.config.messageBridge, {
        broker: ctx.broker,
        log: ctx.log,
        readTextFile: ctx.readTextFile,
        sys: ctx.config.sysTopic.enable,
        health: ctx.health,
        metrics: ctx.metrics,
      }),
    );
  }
  // --- bridges to upstream MQTT brokers (src/bridge/) ---
  if (ctx.config.bridges.length > 0) {
    plugins.push(
      await mqttBridges({
        broker: ctx.broker,
        bridges: ctx.config.bridges,
        log: ctx.log,
        readTextFile: ctx.readTextFile,
        sysTopic: ctx.config.sysTopic,
        queueFor: ctx.bridgeQueue,
        metrics: ctx.metrics,
      }),
    );
  }
  return plugins;
}
