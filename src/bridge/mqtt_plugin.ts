/**
 * `bridges:` from the config → one MqttBridge per entry, plugged into the
 * broker through its hooks and LocalClient only:
 *  - `persistPublish` hands each accepted local message to every bridge whose
 *    out rules take it, unless the message came in over that same bridge (its
 *    `from` is the bridge's local client id): no loops. With a durable queue
 *    it returns the push's promise for QoS 1/2, so the broker holds the
 *    publisher's PUBACK/PUBREC until the message is committed;
 *  - upstream messages are published through the bridge's LocalClient;
 *  - status per bridge in the log (once per state change) and, with
 *    `sys-topic.enable`, in `$SYS/broker/bridges/{name}/status` (not retained,
 *    like all of $SYS: a subscriber gets it at once, then on every state
 *    change and every `sys-topic.interval` while the numbers move):
 *    {"connected":true,"queued":0,"sent":12,"dropped":0,"refused":0,"received":3}
 *    (`dropped`: the queue was full; `refused`: the upstream answered >= 0x80)
 */
import type { MetricsRegistry } from "../http/metrics.ts";
import { mqttBridgeMetrics } from "../http/backend_metrics.ts";
import type { Broker } from "../broker/broker.ts";
import type { BrokerHooks } from "../broker/hooks.ts";
import { LocalClient } from "../broker/local_client.ts";
import type { BridgeConfig } from "../config/types.ts";
import type { QoS } from "../mqtt/packet.ts";
import type { Plugin } from "../plugins.ts";
import { levels } from "../acl/filters.ts";
import { StatusTopics, SYS_BROKER_PREFIX } from "../sys/status_topic.ts";
import { type ConnectFn, MqttBridge } from "./mqtt_bridge.ts";
import { type BridgeQueue, MemoryBridgeQueue } from "./mqtt_queue.ts";
import { BridgeTopics } from "./mqtt_topics.ts";

export interface MqttBridgesOptions {
  broker: Broker;
  bridges: BridgeConfig[];
  log: (line: string) => void;
  readTextFile: (path: string) => Promise<string>;
  sysTopic: { enable: boolean; interval: number };
  /** The outbound queue of a bridge (default: in memory, bounded by `queue-max`). */
  queueFor?: (bridge: BridgeConfig) => BridgeQueue | Promise<BridgeQueue>;
  /** The operations endpoint's /metrics, when there is one. */
  metrics?: MetricsRegistry;
}

/** The client id a bridge's inbound messages carry as `from` locally. */
export function bridgeLocalId(name: string): string {
  return `$mqttx-bridge:${name}`;
}

export interface MqttBridgesPlugin extends Plugin {
  bridges: MqttBridge[];
}

export async function mqttBridges(opts: MqttBridgesOptions): Promise<MqttBridgesPlugin> {
  const { broker, log } = opts;
  // Loaded only when a bridge is configured: the broker alone starts without it.
  const mqtt = await import("mqtt");
  const mqttConnect = mqtt.connect ?? mqtt.default.connect;
  const IdProvider = mqtt.UniqueMessageIdProvider ?? mqtt.default.UniqueMessageIdProvider;
  // Unique ids: the ids of messages still in flight from an earlier connection stay taken.
  const connect: ConnectFn = (o) => mqttConnect({ ...o, messageIdProvider: new IdProvider() });
  const sys = new StatusTopics(new LocalClient(broker, "$mqttx-bridges"), log);
  const entries: { bridge: MqttBridge; localId: string; last: string }[] = [];

  const statusTopic = (b: MqttBridge) => `${SYS_BROKER_PREFIX}bridges/${b.name}/status`;
  const statusOf = (b: MqttBridge) =>
    JSON.stringify({
      connected: b.connected,
      queued: b.queued,
      sent: b.sent,
      dropped: b.dropped,
      refused: b.refused,
      received: b.received,
    });
  const publishStatus = (e: (typeof entries)[number], force: boolean) => {
    if (!opts.sysTopic.enable) return;
    const status = statusOf(e.bridge);
    if (!force && status === e.last) return;
    e.last = status;
    sys.publish(statusTopic(e.bridge), status);
  };

  for (const c of opts.bridges) {
    const local = new LocalClient(broker, bridgeLocalId(c.name));
    const read = (path: string | undefined) => path ? opts.readTextFile(path) : undefined;
    const [ca, cert, key] = await Promise.all([read(c.caFile), read(c.certFile), read(c.keyFile)]);
    const queue = await (opts.queueFor?.(c) ?? new MemoryBridgeQueue(c.queueMax));
    const entry = { bridge: undefined as unknown as MqttBridge, localId: local.clientId, last: "" };
    entry.bridge = new MqttBridge({
      name: c.name,
      url: c.url,
      clientId: c.clientId ?? `mqttx-bridge-${c.name}`,
      username: c.username,
      password: c.password,
      ca,
      cert,
      key,
      protocolVersion: c.protocolVersion === 4 ? 4 : 5,
      keepalive: c.keepalive,
      cleanStart: c.cleanStart,
      topics: new BridgeTopics(c.topics.map((t) => ({ ...t, qos: t.qos as QoS }))),
      queue,
      queueMax: c.queueMax,
      reconnectDelay: c.reconnectDelay,
      reconnectMaxDelay: c.reconnectMaxDelay,
      publishLocal: (topic, payload, qos, retain, rider) =>
        local.publish(topic, payload, { qos, retain, rider }),
      connect,
      log,
      onStateChange: () => queueMicrotask(() => publishStatus(entry, true)),
    });
    entries.push(entry);
    sys.add(statusTopic(entry.bridge), () => statusOf(entry.bridge));
  }
  const outgoing = entries.filter((e) => e.bridge.options.topics.hasOut);

  const hooks: BrokerHooks = {
    // Nothing under $SYS is retained: a new subscriber gets the current status at once.
    onSubscribed(client, filter) {
      if (opts.sysTopic.enable) sys.answer(client.clientId, filter);
    },
    persistPublish(message) {
      const { topic, qos, retain, from } = message;
      let topicLevels: string[] | undefined;
      let stored: Promise<void>[] | undefined;
      for (const e of outgoing) {
        if (from === e.localId) continue; // came in over this bridge: never back out over it
        const mapped = e.bridge.options.topics.outbound(topic, qos, topicLevels ??= levels(topic));
        if (!mapped) continue;
        // A copy: the payload may be a view into the socket's chunk.
        const r = e.bridge.enqueue({
          topic: mapped.topic,
          payload: message.payload.slice(),
          qos: mapped.qos,
          retain,
        });
        if (!(r instanceof Promise)) continue;
        const logged = r.catch((err) => {
          log(`bridge ${e.bridge.name}: queueing failed: ${err}`);
          throw err;
        });
        // QoS 1/2: the publisher's acknowledgement waits until the message is queued durably
        // (and none is sent if that failed). QoS 0 acknowledges nothing: no need to wait.
        if (qos > 0) (stored ??= []).push(logged);
        else logged.catch(() => {});
      }
      if (stored) return stored.length === 1 ? stored[0] : Promise.all(stored).then(() => {});
    },
  };

  for (const e of entries) e.bridge.start();
  if (opts.sysTopic.enable) {
    sys.every(opts.sysTopic.interval, () => entries.forEach((e) => publishStatus(e, false)));
  }
  const bridges = entries.map((e) => e.bridge);
  const removeMetrics = opts.metrics?.register((m) => mqttBridgeMetrics(m, bridges));
  return {
    hooks,
    bridges,
    async stop() {
      sys.stop();
      removeMetrics?.();
      await Promise.all(entries.map((e) => e.bridge.stop()));
    },
  };
}
