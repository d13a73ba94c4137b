/**
 * `/metrics`: the broker's figures in Prometheus form. Everything is read at
 * scrape time from counters the broker keeps anyway (src/broker/stats.ts) or
 * from its sessions; nothing here runs per message. Backends built later
 * (Redis store, cluster, Kafka bridge) add their own families through
 * `MetricsRegistry.register`.
 */
import type { Broker } from "../broker/broker.ts";
import type { BoundListener } from "../transport/listeners.ts";
import type { LoopDelayMonitor } from "./loop_delay.ts";
import { type Labels, PromText } from "./prom_text.ts";
import process from "node:process";

/** Writes some metric families into a scrape. May be async (e.g. a store count). */
export type MetricsCollector = (out: PromText) => void | Promise<void>;

export class MetricsRegistry {
  private readonly collectors = new Set<MetricsCollector>();

  /** Add a collector; returns its removal. */
  register(collector: MetricsCollector): () => void {
    this.collectors.add(collector);
    return () => this.collectors.delete(collector);
  }

  async collect(out: PromText): Promise<void> {
    for (const c of this.collectors) await c(out);
  }
}

export interface BrokerMetricsSource {
  /** Undefined while the broker starts (its store opening): the build info alone. */
  broker: () => Broker | undefined;
  listeners: () => readonly BoundListener[];
  loopDelay: LoopDelayMonitor;
  version: string;
  runtime: string;
  startedAt: number;
}

const QOS = ["0", "1", "2"];
const DROP_REASONS: [keyof Broker["stats"]["dropped"], string][] = [
  ["queueFull", "queue_full"],
  ["tooLarge", "too_large"],
  ["expired", "expired"],
  ["notAuthorized", "not_authorized"],
  ["rateLimited", "rate_limited"],
];

/** The core's families: connections, sessions, traffic, drops, process. */
export function brokerCollector(src: BrokerMetricsSource): MetricsCollector {
  return async (out) => {
    out.family("mqttx_build_info", "gauge", "Version and runtime of this broker.", [
      [{ version: src.version, runtime: src.runtime }, 1],
    ]);
    const broker = src.broker();
    if (!broker) return;
    const stats = broker.stats;
    const bound = src.listeners();
    const connections: [Labels, number][] = bound.map((l, i) => [
      { listener: l.url, type: l.type },
      broker.connectionsByListener[i] ?? 0,
    ]);
    // Connections an embedding program attached itself (src/mod.ts).
    broker.connectionsByListener.forEach((n, i) => {
      if (i >= bound.length) connections.push([{ listener: "attached", type: "stream" }, n]);
    });
    out.family("mqttx_connections", "gauge", "Open connections, by listener.", connections);
    out.family("mqttx_clients_connected", "gauge", "Clients past CONNACK.", broker.connectedCount);
    out.family(
      "mqttx_clients_connected_max",
      "gauge",
      "Most clients connected at once.",
      stats.maxConnected,
    );
    let connected = 0, offline = 0, subscriptions = 0, inflight = 0, queued = 0;
    for (const s of broker.sessions.values()) {
      if (s.connection) connected++;
      else offline++;
      subscriptions += s.subscriptions.size;
      inflight += s.inflight.size;
      queued += s.queue.length;
    }
    out.family("mqttx_sessions", "gauge", "Sessions: connected, or persistent and offline.", [
      [{ state: "connected" }, connected],
      [{ state: "offline" }, offline],
    ]);
    out.family("mqttx_subscriptions", "gauge", "Subscriptions of all sessions.", subscriptions);
    out.family(
      "mqttx_retained_messages",
      "gauge",
      "Retained messages in the store.",
      await broker.store.retainedCount(),
    );
    out.family(
      "mqttx_messages_inflight",
      "gauge",
      "QoS 1/2 deliveries not yet acknowledged.",
      inflight,
    );
    out.family("mqttx_messages_queued", "gauge", "Deliveries waiting in session queues.", queued);
    out.family(
      "mqttx_messages_received_total",
      "counter",
      "PUBLISH packets received from clients, by QoS.",
      QOS.map((q, i) => [{ qos: q }, stats.publishIn[i]]),
    );
    out.family(
      "mqttx_message_bytes_received_total",
      "counter",
      "Payload bytes of PUBLISH packets received from clients, by QoS.",
      QOS.map((q, i) => [{ qos: q }, stats.publishInBytes[i]]),
    );
    out.family(
      "mqttx_messages_sent_total",
      "counter",
      "PUBLISH packets written to clients, by QoS.",
      QOS.map((q, i) => [{ qos: q }, stats.publishOut[i]]),
    );
    out.family(
      "mqttx_message_bytes_sent_total",
      "counter",
      "Payload bytes of PUBLISH packets written to clients, by QoS.",
      QOS.map((q, i) => [{ qos: q }, stats.publishOutBytes[i]]),
    );
    out.family(
      "mqttx_network_bytes_received_total",
      "counter",
      "Bytes read from clients.",
      stats.networkIn,
    );
    out.family(
      "mqttx_network_bytes_sent_total",
      "counter",
      "Bytes written to clients.",
      stats.networkOut,
    );
    out.family(
      "mqttx_messages_dropped_total",
      "counter",
      "Messages not delivered, by reason.",
      DROP_REASONS.map(([key, reason]) => [{ reason }, stats.dropped[key] ?? 0]),
    );
    out.family(
      "mqttx_authentication_failures_total",
      "counter",
      "CONNECTs refused: bad credentials, not authorized, or a bad authentication method.",
      stats.authFailures,
    );
    out.family(
      "process_resident_memory_bytes",
      "gauge",
      "Resident memory size in bytes.",
      process.memoryUsage().rss,
    );
    out.family(
      "process_start_time_seconds",
      "gauge",
      "Start time of the broker since the Unix epoch, seconds.",
      Math.floor(src.startedAt / 1000),
    );
    out.family(
      "mqttx_event_loop_delay_seconds",
      "gauge",
      "How late a 500 ms timer fired last time, seconds.",
      src.loopDelay.last / 1000,
    );
    out.family(
      "mqttx_event_loop_delay_max_seconds",
      "gauge",
      "Largest event-loop delay since the previous scrape, seconds.",
      src.loopDelay.takeMax() / 1000,
    );
  };
}
