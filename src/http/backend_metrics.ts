/**
 * `/metrics` families of the backends, each registered only when configured:
 * the Redis store's link, the cluster's live nodes, and every MQTT bridge's
 * link, queue and counters. Read at scrape time from what they keep anyway.
 */
import type { PromText } from "./prom_text.ts";

export function redisMetrics(m: PromText, redis: { readonly connected: boolean }): void {
  m.family(
    "mqttx_redis_up",
    "gauge",
    "1 while the Redis store is reachable (persistent deliveries are acknowledged).",
    redis.connected ? 1 : 0,
  );
}

export function clusterMetrics(m: PromText, node: { nodes(): readonly unknown[] }): void {
  m.family("mqttx_cluster_nodes", "gauge", "Live nodes of the cluster, this one included.", [
    [{}, node.nodes().length],
  ]);
}

/** What a bridge to an upstream MQTT broker reports (src/bridge/mqtt_bridge.ts). */
export interface BridgeFigures {
  readonly name: string;
  readonly connected: boolean;
  readonly queued: number;
  readonly sent: number;
  readonly dropped: number;
  readonly refused: number;
  readonly received: number;
}

export function mqttBridgeMetrics(m: PromText, bridges: readonly BridgeFigures[]): void {
  const per = (f: (b: BridgeFigures) => number) =>
    bridges.map((b): [Record<string, string>, number] => [{ bridge: b.name }, f(b)]);
  m.family(
    "mqttx_bridge_up",
    "gauge",
    "1 while the bridge is connected to its upstream broker.",
    per((b) => b.connected ? 1 : 0),
  );
  m.family(
    "mqttx_bridge_queued_messages",
    "gauge",
    "Messages waiting to be sent upstream.",
    per((b) => b.queued),
  );
  m.family(
    "mqttx_bridge_messages_sent_total",
    "counter",
    "Messages the upstream broker acknowledged.",
    per((b) => b.sent),
  );
  m.family(
    "mqttx_bridge_messages_dropped_total",
    "counter",
    "Messages dropped because the bridge's queue was full (oldest first).",
    per((b) => b.dropped),
  );
  m.family(
    "mqttx_bridge_messages_refused_total",
    "counter",
    "Messages the upstream broker refused (reason code >= 0x80), dropped from the queue.",
    per((b) => b.refused),
  );
  m.family(
    "mqttx_bridge_messages_received_total",
    "counter",
    "Messages received from the upstream broker.",
    per((b) => b.received),
  );
}
