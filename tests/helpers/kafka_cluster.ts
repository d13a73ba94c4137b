/**
 * For a test file: a cluster with `cluster.type: kafka` — a real redis-server,
 * librdkafka's mock cluster, node "001" on this runtime and "002" on the other
 * (a mixed cluster), started before the tests and stopped after them, with
 * MQTT.js clients for each node. A node's process may be killed and started
 * again (`node.proc`), on the same port.
 */
import { after, before } from "node:test";
import { BrokerProcess } from "./broker_process.ts";
import { nodeYaml, OTHER_RUNTIME } from "./cluster.ts";
import { mustRun } from "./harness.ts";
import { kafkaAvailable, type MockKafka, startMockKafka } from "./kafka_mock.ts";
import { Clients } from "./mqttjs.ts";
import { freePort, RedisServer, redisServerAvailable } from "./redis_server.ts";

export const kafkaClusterSkip = (): string | false =>
  !(redisServerAvailable() && kafkaAvailable()) && !mustRun()
    ? "needs redis-server, gcc, librdkafka-dev and kcat"
    : false;

export interface KafkaNode {
  proc: BrokerProcess;
  url: string;
}

export interface KafkaClusterEnv {
  redis?: RedisServer;
  kafka?: MockKafka;
  a?: KafkaNode;
  b?: KafkaNode;
}

export function useKafkaCluster(
  skip: string | false,
  timing: { heartbeatMs: number; nodeTimeoutMs: number },
) {
  const env: KafkaClusterEnv = {};
  const onA = new Clients(() => env.a!.url);
  const onB = new Clients(() => env.b!.url);
  /** Start a node of this cluster (`kafka`: another bootstrap, e.g. one nobody listens on). */
  const startNode = async (
    id: string,
    runtime?: "deno" | "bun",
    kafka = env.kafka!,
  ): Promise<KafkaNode> => {
    const port = await freePort();
    const yaml = nodeYaml(env.redis!, id, port, "", {
      ...timing,
      lines: `    type: kafka\n    kafka-brokers: [${kafka.bootstrap}]\n`,
    });
    const proc = new BrokerProcess(yaml, runtime);
    await proc.start(60_000);
    return { proc, url: `mqtt://127.0.0.1:${port}` };
  };
  before(async () => {
    if (skip) return;
    env.redis = await RedisServer.start();
    env.kafka = await startMockKafka([]);
    [env.a, env.b] = await Promise.all([startNode("001"), startNode("002", OTHER_RUNTIME)]);
  });
  after(async () => {
    await onA.closeAll();
    await onB.closeAll();
    await env.a?.proc.dispose();
    await env.b?.proc.dispose();
    await env.kafka?.stop();
    await env.redis?.dispose();
  });
  return { env, onA, onB, startNode };
}

/** Lines of a node's output that contain `text`. */
export const linesOf = (n: KafkaNode, text: string) =>
  n.proc.output.split("\n").filter((l) => l.includes(text));
