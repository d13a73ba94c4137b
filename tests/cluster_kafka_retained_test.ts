/**
 * Two real nodes (one per runtime) over the Kafka bus (librdkafka's mock
 * cluster; retained state in Redis as on the Redis bus): retained writes of
 * the same topics on both nodes at the same moment, clears mixed in, end with
 * the same retained message on every node and in Redis.
 */
import { describe, test } from "node:test";
import { kafkaClusterSkip, useKafkaCluster } from "./helpers/kafka_cluster.ts";
import { raceRetainedWrites } from "./helpers/retained_converge.ts";

const skip = kafkaClusterSkip();
const { env, onA, onB } = useKafkaCluster(skip, { heartbeatMs: 300, nodeTimeoutMs: 2_000 });

describe("cluster (kafka bus): concurrent retained writes converge", { skip }, () => {
  test(
    "every node and Redis end with the same retained messages",
    { timeout: 120_000 },
    () => raceRetainedWrites(onA, onB, env.redis!.url),
  );
});
