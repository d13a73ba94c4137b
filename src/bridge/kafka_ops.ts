/**
 * The Kafka bridge on the operations endpoint: a `/health` source named
 * "kafka-bridge" (not ok while the producer or the consumer is down) and its
 * `/metrics` families, read from the counters the bridge keeps anyway.
 */
import type { HealthStatus } from "../http/health.ts";
import type { PromText } from "../http/prom_text.ts";
import type { KafkaOut } from "./kafka_out.ts";
import type { KafkaIn } from "./kafka_in.ts";

export function bridgeHealth(
  out: KafkaOut | undefined,
  inbound: KafkaIn | undefined,
): HealthStatus {
  const problems: string[] = [];
  // "connecting": the producer connects with the first record; nothing has failed yet.
  if (out?.state === "down") problems.push(`producer down, ${out.buffered} records buffered`);
  if (inbound && inbound.state !== "joined") problems.push(`consumer ${inbound.state}`);
  if (problems.length > 0) return { ok: false, detail: problems.join("; ") };
  return {
    ok: true,
    detail: `producer ${out?.state ?? "off"}, consumer ${inbound?.state ?? "off"}`,
  };
}

export function bridgeMetrics(
  m: PromText,
  out: KafkaOut | undefined,
  inbound: KafkaIn | undefined,
): void {
  const up: [Record<string, string>, number][] = [];
  if (out) up.push([{ direction: "to_kafka" }, out.state === "up" ? 1 : 0]);
  if (inbound) up.push([{ direction: "from_kafka" }, inbound.state === "joined" ? 1 : 0]);
  m.family("mqttx_kafka_bridge_up", "gauge", "1 while the bridge's link to Kafka works.", up);
  if (out) {
    m.family(
      "mqttx_kafka_bridge_buffered_records",
      "gauge",
      "Records waiting for Kafka.",
      out.buffered,
    );
    m.family(
      "mqttx_kafka_bridge_records_sent_total",
      "counter",
      "Records Kafka acknowledged.",
      out.sent,
    );
    m.family(
      "mqttx_kafka_bridge_records_dropped_total",
      "counter",
      "Records dropped because the bridge's buffer was full.",
      out.dropped,
    );
    m.family(
      "mqttx_kafka_bridge_records_failed_total",
      "counter",
      "Records Kafka refused for good, or not sent by the end of shutdown.",
      out.failed,
    );
  }
  if (inbound) {
    m.family(
      "mqttx_kafka_bridge_records_received_total",
      "counter",
      "Kafka records routed to MQTT.",
      inbound.routed,
    );
    m.family(
      "mqttx_kafka_bridge_records_unroutable_total",
      "counter",
      "Kafka records skipped: no valid MQTT topic could be made.",
      inbound.unroutable,
    );
  }
}
