/** Build this broker's cluster node from the config (cluster.type: redis or kafka) and join. */
import type { Broker } from "../broker/broker.ts";
import type { MqttxConfig } from "../config/types.ts";
import type { RedisStore } from "../store/redis.ts";
import { ClusterNode } from "./node.ts";
import { RedisQos2Memory } from "./qos2_memory.ts";
import { RedisBus, type RedisBusOptions } from "./redis.ts";
import type { KafkaBus } from "./kafka.ts";
import type { ClusterOps } from "./kafka_ops.ts";

export async function startCluster(
  config: MqttxConfig,
  broker: Broker,
  store: RedisStore,
  log: (line: string) => void,
  readTextFile: (path: string) => Promise<string>,
  ops: ClusterOps = { sys: false },
): Promise<ClusterNode> {
  const nodeId = String(config.brokerId);
  const c = config.cluster;
  const o: RedisBusOptions = {
    url: config.redis.url,
    nodeId,
    heartbeatInterval: c.heartbeatInterval,
    nodeTimeout: c.nodeTimeout,
    log,
  };
  const bus = c.type === "kafka" ? await kafkaBus(config, o, readTextFile) : new RedisBus(o);
  const node = new ClusterNode(
    broker,
    bus,
    store,
    config.shareTopic.shareSubStrategy,
    c.nodeTimeout,
    // On the store's connection: kept before the session batch that stores the message.
    new RedisQos2Memory(store.client, `mqttx:cluster:qos2:${nodeId}`),
  );
  if (c.type === "kafka") {
    // The Kafka link's state and counters on /health, /metrics and $SYS (the Redis bus's
    // link is the Redis store's, already there).
    const { watchKafkaBus } = await import("./kafka_ops.ts");
    node.extra = watchKafkaBus(bus as KafkaBus, broker, ops);
  }
  // Each client's session writes go through only while this node is its writer.
  store.sessions.fence = { writers: bus.writers, want: () => " " + nodeId };
  store.sessions.onFenced = (ids, lost) => node.fenced(ids, lost);
  try {
    await node.start();
  } catch (e) {
    node.extra.stop?.();
    await bus.leave().catch(() => {});
    throw e;
  }
  log(`cluster: node ${nodeId} joined over ${c.type} (${node.nodes().length} live nodes)`);
  return node;
}

/** State in Redis, messages over Kafka (kafkajs is loaded only for this bus). */
async function kafkaBus(
  config: MqttxConfig,
  o: RedisBusOptions,
  readTextFile: (path: string) => Promise<string>,
): Promise<RedisBus> {
  const [{ KafkaBus }, { connectionOptions }] = await Promise.all([
    import("./kafka.ts"),
    import("../bridge/kafka.ts"),
  ]);
  const c = config.cluster;
  // Where and how to connect: TLS and SASL as the bridge's (message-bridge.tls, .sasl).
  const bridge = config.messageBridge;
  const kafka = await connectionOptions({
    ...bridge,
    kafkaBrokers: c.kafkaBrokers.length > 0 ? c.kafkaBrokers : bridge.kafkaBrokers,
    clientId: `${bridge.clientId}-cluster-${o.nodeId}`,
  }, readTextFile);
  return new KafkaBus({
    ...o,
    kafka,
    topicPrefix: c.kafkaTopicPrefix,
    bufferSize: c.kafkaBufferSize,
    holdUntilReady: true,
  });
}
