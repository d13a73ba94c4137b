/**
 * The Kafka bridge (`message-bridge.*`), both directions, as a plugin: an
 * in-process client of the broker that sees messages through the
 * persistPublish hook and publishes through a LocalClient, never reaching
 * into the broker. kafkajs is loaded only when the bridge is enabled.
 *
 * State and counters are answered on `$SYS/broker/bridge/kafka` (when
 * sys-topic.enable) right after a subscribe, and published there on each
 * state change:
 *   {"producer":"up","buffered":0,"sent":120,"dropped":0,"failed":0,
 *    "consumer":"joined","fromKafka":3,"unroutable":0}
 */
import type { KafkaConfig, SASLOptions } from "kafkajs";
import type { Broker } from "../broker/broker.ts";
import { LocalClient } from "../broker/local_client.ts";
import type { BrokerHooks } from "../broker/hooks.ts";
import type { MessageBridgeConfig } from "../config/types.ts";
import { StatusTopics, SYS_BROKER_PREFIX } from "../sys/status_topic.ts";
import type { Plugin } from "../plugins.ts";
import { KafkaOut } from "./kafka_out.ts";
import { KafkaIn } from "./kafka_in.ts";
import { bridgeHealth, bridgeMetrics } from "./kafka_ops.ts";
import type { HealthRegistry } from "../http/health.ts";
import type { MetricsRegistry } from "../http/metrics.ts";

export const BRIDGE_SYS_TOPIC = `${SYS_BROKER_PREFIX}bridge/kafka`;

export interface KafkaBridgeContext {
  broker: Broker;
  log: (line: string) => void;
  readTextFile: (path: string) => Promise<string>;
  /** Answer on BRIDGE_SYS_TOPIC (sys-topic.enable). */
  sys: boolean;
  /** The operations endpoint's registries (/health, /metrics), when there is one. */
  health?: HealthRegistry;
  metrics?: MetricsRegistry;
}

export async function kafkaBridge(
  c: MessageBridgeConfig,
  ctx: KafkaBridgeContext,
): Promise<Plugin> {
  const kafkajs = await import("kafkajs");
  const { Kafka, Partitioners, CompressionTypes, logLevel } = kafkajs;
  const kafka = new Kafka({
    ...await connectionOptions(c, ctx.readTextFile),
    // The bridge logs once per state change itself; kafkajs would log every failed attempt.
    logLevel: logLevel.NOTHING,
    connectionTimeout: 3_000,
    // Short retries inside kafkajs; the bridge backs off between its own attempts.
    retry: { retries: 2, initialRetryTime: 100, maxRetryTime: 1_000 },
  });
  const local = new LocalClient(ctx.broker, "$mqttx-kafka");
  const sys = new StatusTopics(local, ctx.log);
  // Read a microtask after a change or at a subscribe, when `out` and `inbound` exist.
  const status = () =>
    JSON.stringify({
      producer: out?.state ?? "off",
      buffered: out?.buffered ?? 0,
      sent: out?.sent ?? 0,
      dropped: out?.dropped ?? 0,
      failed: out?.failed ?? 0,
      consumer: inbound?.state ?? "off",
      fromKafka: inbound?.routed ?? 0,
      unroutable: inbound?.unroutable ?? 0,
    });
  sys.add(BRIDGE_SYS_TOPIC, status);
  const onChange = () => {
    if (ctx.sys) sys.publish(BRIDGE_SYS_TOPIC, status);
  };

  // Not idempotent: kafkajs's idempotent producer hangs on Bun (oven-sh/bun#6571) and finds no
  // controller on librdkafka's mock cluster; one request at a time keeps the order instead.
  const out = c.topics.length === 0 ? undefined : new KafkaOut(
    kafka.producer({
      createPartitioner: Partitioners.DefaultPartitioner,
      maxInFlightRequests: 1,
      idempotent: false,
    }),
    {
      topics: c.topics,
      key: c.key,
      batchSize: c.batchSize,
      lingerMs: c.linger,
      compression: c.compression === "gzip" ? CompressionTypes.GZIP : CompressionTypes.None,
      acks: c.acks === "all" ? -1 : c.acks === "leader" ? 1 : 0,
      bufferSize: c.bufferSize,
      ackAfterKafka: c.ackAfterKafka,
      log: ctx.log,
      onChange,
    },
  );
  const inbound = c.fromKafka.length === 0 ? undefined : new KafkaIn(
    kafka.consumer({
      groupId: c.groupId,
      retry: { restartOnFailure: () => Promise.resolve(true) },
      // Kafka's former defaults: a restarted broker gets its partitions back within ~10 s.
      sessionTimeout: 10_000,
      heartbeatInterval: 3_000,
      // A fetch waits at most 1 s for records (and shutdown for that fetch).
      maxWaitTimeInMs: 1_000,
    }),
    c.fromKafka.map((e) => ({ ...e, qos: e.qos as 0 | 1 | 2 })),
    local,
    ctx.log,
    onChange,
  );
  void inbound?.start();
  const removeHealth = ctx.health?.register({
    name: "kafka-bridge",
    status: () => bridgeHealth(out, inbound),
  });
  const removeMetrics = ctx.metrics?.register((m) => bridgeMetrics(m, out, inbound));

  const hooks: BrokerHooks = {};
  if (out) hooks.persistPublish = (m) => m.internal ? undefined : out.take(m);
  if (ctx.sys) hooks.onSubscribed = (client, filter) => void sys.answer(client.clientId, filter);
  return {
    hooks,
    async stop() {
      removeHealth?.();
      removeMetrics?.();
      await out?.stop(c.shutdownTimeout);
      sys.stop();
      await inbound?.stop();
    },
  };
}

/** Where and how to connect: bootstrap servers, client id, TLS (PEM files read here) and SASL. */
export async function connectionOptions(
  c: MessageBridgeConfig,
  readTextFile: (path: string) => Promise<string>,
): Promise<Pick<KafkaConfig, "clientId" | "brokers" | "ssl" | "sasl">> {
  let ssl: KafkaConfig["ssl"];
  if (c.tls.enable) {
    const read = (p: string | undefined) => (p === undefined ? undefined : readTextFile(p));
    const [ca, cert, key] = await Promise.all([
      read(c.tls.caFile),
      read(c.tls.certFile),
      read(c.tls.keyFile),
    ]);
    ssl = { ca: ca ? [ca] : undefined, cert, key, rejectUnauthorized: c.tls.rejectUnauthorized };
  }
  const sasl = c.sasl.mechanism === "none" ? undefined : {
    mechanism: c.sasl.mechanism,
    username: c.sasl.username,
    password: c.sasl.password,
  } as SASLOptions;
  return { clientId: c.clientId, brokers: c.kafkaBrokers, ssl, sasl };
}
