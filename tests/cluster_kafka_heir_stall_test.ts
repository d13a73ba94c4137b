/**
 * `cluster.type: kafka`, as tests/cluster_kafka_heir_return_test.ts, with the heir stalling past
 * its lock (2 node timeouts) while the dead node's broker-id waits to come back: the returning run
 * joins meanwhile, sees the heir dead and takes the sessions back. The heir, waking, must stop
 * reading the dead run's topic and commit nothing more: it read and committed, in the group the
 * returning run reads, the messages sent while B was dead, and delivered them into sessions it no
 * longer held (all 50 lost, in 4 of 4 runs).
 */
import { describe, test } from "node:test";
import { kafkaClusterSkip, useKafkaCluster } from "./helpers/kafka_cluster.ts";
import { returnWhileHeirDrains } from "./helpers/kafka_heir_return.ts";

const skip = kafkaClusterSkip();
const cluster = useKafkaCluster(skip, { heartbeatMs: 300, nodeTimeoutMs: 2_500 });

describe("cluster over Kafka: an heir that stalls past its lock", { skip }, () => {
  test("leaves the dead node's topic to its returning run: no message lost", {
    timeout: 240_000,
  }, () => returnWhileHeirDrains(cluster, 6_000)); // > 2 × node-timeout
});
