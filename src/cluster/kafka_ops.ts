/**
 * The Kafka cluster bus on the operations endpoint and in `$SYS`, read from
 * what the bus keeps anyway (kafka.ts):
 *
 * - `/health` source "cluster-kafka": not ok while sending over Kafka fails or
 *   this node's consumer group is not joined (messages for it wait in Kafka);
 * - `/metrics`: `mqttx_cluster_kafka_up{direction}`, buffered messages, sent,
 *   dropped and received totals, and the lag of this node's topic;
 * - `$SYS/broker/cluster/kafka` (sys-topic.enable): answered right after a
 *   subscribe, and published there on each state change:
 *   {"sending":"up","reading":"joined","buffered":0,"sent":120,"dropped":0,
 *    "received":118,"lag":0}
 */
import type { Broker } from "../broker/broker.ts";
import type { BrokerHooks } from "../broker/hooks.ts";
import { LocalClient } from "../broker/local_client.ts";
import { StatusTopics, SYS_BROKER_PREFIX } from "../sys/status_topic.ts";
import type { HealthRegistry, HealthStatus } from "../http/health.ts";
import type { MetricsRegistry } from "../http/metrics.ts";
import type { PromText } from "../http/prom_text.ts";
import type { KafkaBus } from "./kafka.ts";

export const CLUSTER_KAFKA_SYS_TOPIC = SYS_BROKER_PREFIX + "cluster/kafka";

/** Where the bus is shown: the endpoint's registries (if any) and whether $SYS is on. */
export interface ClusterOps {
  health?: HealthRegistry;
  metrics?: MetricsRegistry;
  sys: boolean;
}

type Figures = Pick<
  KafkaBus,
  "sending" | "reading" | "buffered" | "sent" | "dropped" | "received" | "lag"
>;

export function kafkaBusHealth(bus: Figures): HealthStatus {
  const problems: string[] = [];
  if (bus.sending === "down") problems.push(`cannot send, ${bus.buffered} messages buffered`);
  if (bus.reading !== "joined") problems.push(`reading ${bus.reading}`);
  if (problems.length > 0) return { ok: false, detail: problems.join("; ") };
  return { ok: true, detail: `sending ${bus.sending}, reading joined, lag ${bus.lag}` };
}

export function kafkaBusMetrics(m: PromText, bus: Figures): void {
  m.family("mqttx_cluster_kafka_up", "gauge", "1 while the cluster's Kafka link works.", [
    [{ direction: "send" }, bus.sending === "down" ? 0 : 1],
    [{ direction: "read" }, bus.reading === "joined" ? 1 : 0],
  ]);
  m.family(
    "mqttx_cluster_kafka_buffered_messages",
    "gauge",
    "Messages to other nodes waiting for Kafka.",
    bus.buffered,
  );
  m.family(
    "mqttx_cluster_kafka_messages_sent_total",
    "counter",
    "Messages to other nodes Kafka acknowledged.",
    bus.sent,
  );
  m.family(
    "mqttx_cluster_kafka_messages_dropped_total",
    "counter",
    "Messages to other nodes dropped: the send buffer was full, or Kafka refused them for good.",
    bus.dropped,
  );
  m.family(
    "mqttx_cluster_kafka_messages_received_total",
    "counter",
    "Messages from other nodes read from Kafka.",
    bus.received,
  );
  m.family(
    "mqttx_cluster_kafka_lag_records",
    "gauge",
    "Records of this node's topic not read yet, as of the last batch read.",
    bus.lag,
  );
}

export function kafkaBusStatus(bus: Figures): string {
  const { sending, reading, buffered, sent, dropped, received, lag } = bus;
  return JSON.stringify({ sending, reading, buffered, sent, dropped, received, lag });
}

/** Register the bus with the endpoint and $SYS; returns the $SYS hooks and the undo. */
export function watchKafkaBus(
  bus: KafkaBus,
  broker: Broker,
  ops: ClusterOps,
): { hooks: BrokerHooks; stop: () => void } {
  const removeHealth = ops.health?.register({
    name: "cluster-kafka",
    status: () => kafkaBusHealth(bus),
  });
  const removeMetrics = ops.metrics?.register((m) => kafkaBusMetrics(m, bus));
  const hooks: BrokerHooks = {};
  let sys: StatusTopics | undefined;
  if (ops.sys) {
    const topics = sys = new StatusTopics(
      new LocalClient(broker, "$mqttx-cluster"),
      (line) => broker.log(line),
    );
    const status = () => kafkaBusStatus(bus);
    topics.add(CLUSTER_KAFKA_SYS_TOPIC, status);
    bus.onChange = () => topics.publish(CLUSTER_KAFKA_SYS_TOPIC, status);
    hooks.onSubscribed = (client, filter) => void topics.answer(client.clientId, filter);
  }
  return {
    hooks,
    stop: () => {
      sys?.stop();
      bus.onChange = undefined;
      removeHealth?.();
      removeMetrics?.();
    },
  };
}
