/**
 * `cluster.type: kafka`: a dead node's broker-id comes back while its heir is
 * still taking over that node's sessions and reading its Kafka topic. Real
 * processes: node B (the other runtime) is killed with SIGKILL while node A
 * publishes QoS 1 into B's topic for B's offline persistent subscriber; node A
 * inherits the session; B is started again (same broker-id) right then.
 *
 * Whichever node ends up with the session, the subscriber gets every message
 * that was sent for it while B was dead, and a client of the returning run gets
 * every message sent to it: the returning run must not take the dead run's
 * topic from the heir, nor the heir (reading that topic for the dead run's
 * sessions) what is sent to the returning run.
 */
import { describe, test } from "node:test";
import { kafkaClusterSkip, useKafkaCluster } from "./helpers/kafka_cluster.ts";
import { returnWhileHeirDrains } from "./helpers/kafka_heir_return.ts";

const skip = kafkaClusterSkip();
const cluster = useKafkaCluster(skip, { heartbeatMs: 300, nodeTimeoutMs: 2_500 });

describe("cluster over Kafka: a dead node's broker-id back while its heir drains", { skip }, () => {
  test("the subscriber gets every message sent while its node was dead", {
    timeout: 240_000,
  }, () => returnWhileHeirDrains(cluster, 0));
});
