/**
 * For a test file: a cluster with `cluster.type: kafka` — a real redis-server,
 * librdkafka's mock cluster, node "001" on this runtime and "002" on the other
 * (a mixed cluster), started before the tests and stopped after them, with
 * MQTT.js clients for each node. A node's process may be killed and started
 * again (`node.proc`), on the same port.
 */
import { after, before } from "node:test";
import { BrokerProcess } from "./broker_process.ts";
import { nodeYaml, OTHER_RUNTIME, untilRouted } from "./cluster.ts";
import { mustRun } from "./harness.ts";
import { kafkaAvailable, type MockKafka, startMockKafka } from "./kafka_mock.ts";
import { Clients, type Connected, sleep, subscribe, uid, withTimeout } from "./mqttjs.ts";
import { RedisServer, redisServerAvailable } from "./redis_server.ts";
import { freePort } from "./free_port.ts";

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

/** Polls until `node`'s output contains `text`; false after `ms`. */
export async function untilLogged(node: KafkaNode, text: string, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (!node.proc.output.includes(text)) {
    if (Date.now() > deadline) return false;
    await sleep(100);
  }
  return true;
}

/**
 * A persistent subscriber to `${t}/#` on node B (client id `id`), routed from a publisher on
 * node A, then offline with its session stored; then node B killed (SIGKILL). The publisher.
 */
export async function offlineOnKilledB(
  cluster: { env: KafkaClusterEnv; onA: Clients; onB: Clients },
  t: string,
  id: string,
  qos: 1 | 2,
): Promise<Connected> {
  const sub = await cluster.onB.connect({ clientId: id, clean: false });
  await subscribe(sub.client, `${t}/#`, { qos });
  const pub = await cluster.onA.connect({ clientId: `pub-${uid()}`, protocolVersion: 5 });
  await untilRouted(pub.client, sub.inbox, `${t}/probe`, 40_000);
  await withTimeout(sub.client.endAsync(), "the subscriber disconnects");
  await sleep(500); // its session is stored in Redis
  await cluster.env.b!.proc.kill("SIGKILL");
  return pub;
}
