/**
 * A cluster for tests: one real redis-server and broker processes as nodes
 * (`cluster.enable: true`, short heartbeats so a killed node's liveness ends
 * in a few seconds). Nodes may run on either runtime, to test a mixed cluster.
 */
import { after, before } from "node:test";
import type { MqttClient } from "mqtt";
import { BrokerProcess, THIS_RUNTIME } from "./broker_process.ts";
import {
  Clients,
  type Connected,
  type Inbox,
  type Received,
  sleep,
  subscribe,
  uid,
} from "./mqttjs.ts";
import { RedisServer, type RedisServerOptions } from "./redis_server.ts";
import { freePort } from "./free_port.ts";

// Bun gives hooks its 5 s default test timeout (node:test's `before(fn, { timeout })` is ignored
// there): starting Redis and two nodes in `before` took longer on a loaded 2-core machine.
if ("Bun" in globalThis) {
  const runner = "bun:test"; // a variable: Deno never resolves it
  (await import(runner)).setDefaultTimeout(120_000);
}

export const HEARTBEAT_MS = 300;
export const NODE_TIMEOUT_MS = 2_000;

export interface ClusterNodeProcess {
  proc: BrokerProcess;
  port: number;
  url: string;
}

/** Keys of the `cluster` section other than enable (type, kafka-brokers, timings). */
export interface ClusterKeys {
  heartbeatMs?: number;
  nodeTimeoutMs?: number;
  /** More lines of the cluster section, indented 4. */
  lines?: string;
}

export function nodeYaml(
  redis: RedisServer,
  brokerId: string,
  port: number,
  extra = "",
  cluster: ClusterKeys = {},
): string {
  return `mqttx:
  broker-id: "${brokerId}"
  enable-test-mode: false
  host: 127.0.0.1
  socket:
    port: ${port}
  sys-topic:
    enable: true
  redis:
    url: ${redis.url}
  cluster:
    enable: true
    heartbeat-interval: ${cluster.heartbeatMs ?? HEARTBEAT_MS}ms
    node-timeout: ${cluster.nodeTimeoutMs ?? NODE_TIMEOUT_MS}ms
${cluster.lines ?? ""}${extra}`;
}

/** Start a node; resolves once it listens. */
export async function startNode(
  redis: RedisServer,
  brokerId: string,
  runtime?: "deno" | "bun",
  extra = "",
): Promise<ClusterNodeProcess> {
  const port = await freePort();
  const proc = new BrokerProcess(nodeYaml(redis, brokerId, port, extra), runtime);
  try {
    await proc.start(60_000);
  } catch (e) {
    await proc.dispose();
    throw e;
  }
  return { proc, port, url: `mqtt://127.0.0.1:${port}` };
}

/** Route changes travel asynchronously: publish QoS 0 probes until the subscriber sees one. */
export async function untilRouted(
  pub: MqttClient,
  inbox: Inbox,
  topic: string,
  ms = 20_000,
): Promise<void> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    pub.publish(topic, "probe", { qos: 0 });
    const seen = await inbox.until((m) => m.some((x) => x.topic === topic), "probe", 250)
      .then(() => true, () => false);
    if (seen) return;
  }
  throw new Error(`no route to ${topic} after ${ms} ms`);
}

/**
 * A subscriber to `t` on node B, one to `${t}/local` on node A and a publisher on node A, once
 * `t` is routed from A to B: what a test needs to see local service go on while the bus is down.
 */
export async function crossAndLocal(
  onA: Clients,
  onB: Clients,
  t: string,
): Promise<{ remote: Connected; local: Connected; pub: Connected }> {
  const remote = await onB.connect({ clientId: `rsub-${uid()}` });
  await subscribe(remote.client, t, { qos: 0 });
  const local = await onA.connect({ clientId: `lsub-${uid()}` });
  await subscribe(local.client, `${t}/local`, { qos: 0 });
  const pub = await onA.connect({ clientId: `pub-${uid()}` });
  await untilRouted(pub.client, remote.inbox, t, 20_000);
  return { remote, local, pub };
}

/** The runtime a mixed cluster's second node runs on. */
export const OTHER_RUNTIME = THIS_RUNTIME === "deno" ? "bun" : "deno";

/**
 * For a test file: a redis-server and nodes "001" (this runtime) and "002"
 * (the other one), started before its tests and stopped after them, with
 * MQTT.js clients for each node. `options.extra(brokerId)`: more YAML for that
 * node's config (keys under `mqttx:`, indented two spaces).
 */
export function useTwoNodes(
  skip: string | false,
  options: { redis?: RedisServerOptions; extra?: (brokerId: string) => Promise<string> } = {},
) {
  const nodes: { redis?: RedisServer; a?: ClusterNodeProcess; b?: ClusterNodeProcess } = {};
  const onA = new Clients(() => nodes.a!.url);
  const onB = new Clients(() => nodes.b!.url);
  before(async () => {
    if (skip) return;
    const redis = nodes.redis = await RedisServer.start(options.redis);
    const extra = options.extra ?? (() => Promise.resolve(""));
    const [extraA, extraB] = [await extra("001"), await extra("002")];
    [nodes.a, nodes.b] = await Promise.all([
      startNode(redis, "001", undefined, extraA),
      startNode(redis, "002", OTHER_RUNTIME, extraB),
    ]);
  });
  after(async () => {
    await onA.closeAll();
    await onB.closeAll();
    await nodes.a?.proc.dispose();
    await nodes.b?.proc.dispose();
    await nodes.redis?.dispose();
  });
  return { nodes, onA, onB };
}

/** The retained message a fresh subscriber on `on` gets for `topic` (polled: changes travel). */
export async function retainedOn(
  on: Clients,
  topic: string,
  want: (m: Received | undefined) => boolean,
  ms = 15_000,
): Promise<Received | undefined> {
  const deadline = Date.now() + ms;
  let got: Received | undefined;
  do {
    // Refused while the node cannot reach Redis (the client id is claimed there): try again.
    const s = await on.connect({ clientId: `r-${uid()}`, protocolVersion: 5 }).catch(() => null);
    if (!s) {
      await sleep(250);
      continue;
    }
    await subscribe(s.client, topic, { qos: 1 });
    got = await s.inbox.until((ms) => ms.length > 0, "retained", 500)
      .then((ms) => ms[0], () => undefined);
    await s.client.endAsync();
    if (want(got)) return got;
    await sleep(100);
  } while (Date.now() < deadline);
  return got;
}
