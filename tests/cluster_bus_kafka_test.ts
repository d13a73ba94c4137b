/**
 * The ClusterBus contract (src/cluster/contract.ts) against the Kafka bus: state
 * in a real redis-server, messages over librdkafka's mock cluster.
 */
import { after, before } from "node:test";
import {
  CONTRACT_HEARTBEAT_MS,
  CONTRACT_NODE_TIMEOUT_MS,
  runBusContract,
} from "../src/cluster/contract.ts";
import { KafkaBus } from "../src/cluster/kafka.ts";
import type { ClusterBus } from "../src/cluster/types.ts";
import { kafkaAvailable, type MockKafka, startMockKafka } from "./helpers/kafka_mock.ts";
import { mustRun } from "./helpers/harness.ts";
import { RedisServer, redisServerAvailable } from "./helpers/redis_server.ts";

const skip = !(redisServerAvailable() && kafkaAvailable()) && !mustRun()
  ? "needs redis-server, gcc, librdkafka-dev and kcat"
  : false;
let server: RedisServer | undefined;
let kafka: MockKafka | undefined;
let cluster = 0;

before(async () => {
  if (skip) return;
  server = await RedisServer.start();
  kafka = await startMockKafka([]);
});

after(async () => {
  await kafka?.stop();
  await server?.dispose();
});

runBusContract("kafka", {
  skip,
  backend: () => {
    // Each test its own Redis prefix and Kafka topics: its own cluster.
    const n = ++cluster;
    const buses: KafkaBus[] = [];
    return Promise.resolve({
      bus: (id: string): ClusterBus => {
        const bus = new KafkaBus({
          url: server!.url,
          nodeId: id,
          heartbeatInterval: CONTRACT_HEARTBEAT_MS,
          nodeTimeout: CONTRACT_NODE_TIMEOUT_MS,
          prefix: `test${n}:cluster:`,
          kafka: { brokers: kafka!.bootstrap.split(","), clientId: `contract-${id}` },
          topicPrefix: `test${n}.cluster.`,
        });
        buses.push(bus);
        return bus;
      },
      crash: (bus: ClusterBus) => Promise.resolve((bus as KafkaBus).abandon()),
      dispose: async () => {
        for (const b of buses) await b.leave().catch(() => {});
      },
    });
  },
});
