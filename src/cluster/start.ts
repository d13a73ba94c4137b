/** Build this broker's cluster node from the config (cluster.type: redis) and join. */
import type { Broker } from "../broker/broker.ts";
import type { MqttxConfig } from "../config/types.ts";
import type { RedisStore } from "../store/redis.ts";
import { ClusterNode } from "./node.ts";
import { RedisBus } from "./redis.ts";

export async function startCluster(
  config: MqttxConfig,
  broker: Broker,
  store: RedisStore,
  log: (line: string) => void,
): Promise<ClusterNode> {
  const nodeId = String(config.brokerId);
  const bus = new RedisBus({
    url: config.redis.url,
    nodeId,
    heartbeatInterval: config.cluster.heartbeatInterval,
    nodeTimeout: config.cluster.nodeTimeout,
    log,
  });
  const node = new ClusterNode(
    broker,
    bus,
    store,
    config.shareTopic.shareSubStrategy,
    config.cluster.nodeTimeout,
  );
  // Each client's session writes go through only while this node is its writer.
  store.sessions.fence = { writers: bus.writers, want: () => " " + nodeId };
  store.sessions.onFenced = (ids) => node.fenced(ids);
  try {
    await node.start();
  } catch (e) {
    await bus.leave().catch(() => {});
    throw e;
  }
  log(`cluster: node ${nodeId} joined (${node.nodes().length} live nodes)`);
  return node;
}
