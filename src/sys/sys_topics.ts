/**
 * `$SYS` topics (`sys-topic.enable`, `sys-topic.interval`), as in the original
 * mqttx. Every payload is JSON; times are local `yyyy-MM-dd HH:mm:ss`.
 *
 * Answered to the subscriber alone, right after its SUBACK (one message per
 * matching topic, QoS 0, never retained):
 *
 *   $SYS/broker/activeConnectCount     {"activeConnectCount":3}
 *   $SYS/broker/time                   {"timestamp":"2024-05-01 12:00:00"}
 *   $SYS/broker/version                {"version":"0.1.0"}
 *   $SYS/broker/maxActiveConnectCount  {"maxActiveConnectCount":7}
 *   $SYS/broker/receivedMsg            {"receivedMsg":120}   messages accepted for routing
 *   $SYS/broker/sendMsg                {"sendMsg":240}       deliveries routed to sessions
 *   $SYS/broker/uptime                 {"uptime":3600}       seconds
 *   $SYS/broker/droppedMsg             {"droppedMsg":{"queueFull":5,"tooLarge":0,"expired":0,
 *                                       "notAuthorized":1,"rateLimited":0}}  undelivered, by reason
 *
 * Periodic: a subscriber of `$SYS/broker/status` (or the later original's
 * `$SYS/broker/{brokerId}/status`) gets the status right after subscribing, then
 * every `interval`, while it stays connected and subscribed:
 *   {"activeConnectCount":3,"maxActiveConnectCount":7,"receivedMsg":120,"sendMsg":240,
 *    "droppedMsg":{...},"timestamp":"2024-05-01 12:00:00","uptime":3600,"version":"0.1.0"}
 *
 * Presence events, published to whoever subscribes (wildcards work), QoS 0, never retained:
 *   $SYS/broker/{brokerId}/clients/{clientId}/connected|disconnected
 *   {"clientId":"c1","username":"u","ip":"10.0.0.5","protocolVersion":4,
 *    "timestamp":"2024-05-01 12:00:00"}
 *
 * Wildcard filters get every topic they match (`$SYS/broker/+` gets all of the
 * above that fit). `#` and `+/...` never match `$SYS` (the core's rule
 * [MQTT-4.7.2-1]). Shared subscriptions to `$SYS` get presence events only.
 * `$SYS` subscriptions last as long as the connection: when a client
 * disconnects they are removed from its session (a resumed session does not
 * have them). Clients may never publish to `$SYS` (nor leave a will there):
 * only the broker does, through its LocalClient; that guard is on even when
 * `sys-topic.enable` is false.
 */
import type { Broker } from "../broker/broker.ts";
import type { BrokerHooks, ClientInfo } from "../broker/hooks.ts";
import { LocalClient } from "../broker/local_client.ts";
import { removeSubscription } from "../broker/session_subscriptions.ts";
import { type Levels, levels, matchesTopic } from "../acl/filters.ts";
import type { Plugin } from "../plugins.ts";
import { isSysTopic, StatusTopics, SYS_BROKER_PREFIX as PREFIX } from "./status_topic.ts";

export { isSysTopic, SYS_BROKER_PREFIX } from "./status_topic.ts";

export interface SysTopicsOptions {
  broker: Broker;
  /** Publish $SYS data at all; false leaves only the publish guard. */
  enable: boolean;
  brokerId: string | number;
  version: string;
  /** ms between `status` pushes (at least 10). */
  interval: number;
}

/** `yyyy-MM-dd HH:mm:ss` in local time, as the original's LocalDateTime pattern. */
export function formatTimestamp(d: Date): string {
  const p = (n: number) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ` +
    `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

/** The address part of "ip:port" / "[v6]:port". */
export function ipOf(remoteAddr: string): string {
  if (remoteAddr.startsWith("[")) {
    const end = remoteAddr.indexOf("]");
    return end > 0 ? remoteAddr.slice(1, end) : remoteAddr;
  }
  const colon = remoteAddr.lastIndexOf(":");
  return colon > 0 ? remoteAddr.slice(0, colon) : remoteAddr;
}

/** Clients may never publish to $SYS. One function for every broker (a JIT sees one callee). */
const notSysTopic = (_client: unknown, topic: string) => !isSysTopic(topic);

/** The publish guard alone (what runs when `sys-topic.enable` is false). */
export function sysPublishGuard(): BrokerHooks {
  return { authorizePublish: notSysTopic };
}

export function sysTopics(opts: SysTopicsOptions): Plugin {
  const guard = sysPublishGuard();
  if (!opts.enable) return { hooks: guard };
  const { broker, brokerId, version } = opts;
  const sys = new StatusTopics(new LocalClient(broker, "$mqttx-sys"), (l) => broker.log(l));
  const startedAt = Date.now();
  const uptime = () => Math.floor((Date.now() - startedAt) / 1000);
  const now = () => formatTimestamp(new Date());

  const oneShots: [string, () => unknown][] = [
    ["activeConnectCount", () => ({ activeConnectCount: broker.connectedCount })],
    ["time", () => ({ timestamp: now() })],
    ["version", () => ({ version })],
    ["maxActiveConnectCount", () => ({ maxActiveConnectCount: broker.stats.maxConnected })],
    ["receivedMsg", () => ({ receivedMsg: broker.stats.received })],
    ["sendMsg", () => ({ sendMsg: broker.stats.sent })],
    ["uptime", () => ({ uptime: uptime() })],
    ["droppedMsg", () => ({ droppedMsg: broker.stats.dropped })],
    // The live nodes of the cluster (this one alone when not clustered).
    ["nodes", () => ({ nodes: broker.cluster?.nodes() ?? [{ id: String(brokerId) }] })],
  ];
  for (const [name, answer] of oneShots) sys.add(PREFIX + name, () => JSON.stringify(answer()));
  const statusTopics: [string, Levels][] = [PREFIX + "status", `${PREFIX}${brokerId}/status`]
    .map((t) => [t, levels(t)]);
  const status = () =>
    JSON.stringify({
      activeConnectCount: broker.connectedCount,
      maxActiveConnectCount: broker.stats.maxConnected,
      receivedMsg: broker.stats.received,
      sendMsg: broker.stats.sent,
      droppedMsg: broker.stats.dropped,
      timestamp: now(),
      uptime: uptime(),
      version,
    });
  for (const [topic] of statusTopics) sys.add(topic, status);
  const isStatusTopic = (topic: string) => statusTopics.some(([t]) => t === topic);

  /** Connected clients that subscribed to a status topic, by client id. */
  const statusSubscribers = new Set<string>();
  let stopped = false;

  /** Status topics the session's (non-shared) subscriptions still match. */
  const subscribedStatusTopics = (clientId: string): string[] => {
    const session = broker.sessions.get(clientId);
    if (!session?.connection) return [];
    const out: string[] = [];
    for (const [topic, t] of statusTopics) {
      for (const sub of session.subscriptions.values()) {
        if (
          sub.group === undefined && isSysTopic(sub.matchFilter) &&
          matchesTopic(levels(sub.matchFilter), t)
        ) {
          out.push(topic);
          break;
        }
      }
    }
    return out;
  };

  sys.every(opts.interval, () => {
    if (statusSubscribers.size === 0) return;
    const payload = status();
    for (const id of statusSubscribers) {
      const topics = subscribedStatusTopics(id);
      if (topics.length === 0) statusSubscribers.delete(id); // unsubscribed or gone
      for (const topic of topics) sys.local.sendTo(id, topic, payload);
    }
  });

  const presence = (client: ClientInfo, event: "connected" | "disconnected") => {
    // A topic name may not hold wildcards: such a client id gets no event.
    if (stopped || /[+#]/.test(client.clientId)) return;
    const payload = JSON.stringify({
      clientId: client.clientId,
      username: client.username ?? null,
      ip: ipOf(client.remoteAddr),
      protocolVersion: client.protocolVersion,
      timestamp: now(),
    });
    sys.publish(`${PREFIX}${brokerId}/clients/${client.clientId}/${event}`, payload);
  };

  const hooks: BrokerHooks = {
    authorizePublish: guard.authorizePublish,
    onSubscribed(client, filter) {
      // Also skips $share/...: presence only.
      if (sys.answer(client.clientId, filter).some(isStatusTopic)) {
        statusSubscribers.add(client.clientId);
      }
    },
    onConnected(client) {
      presence(client, "connected");
    },
    onDisconnected(client) {
      statusSubscribers.delete(client.clientId);
      const session = broker.sessions.get(client.clientId);
      if (session && !session.connection) {
        // $SYS subscriptions end with the connection (they are never persisted).
        for (const [filter, sub] of [...session.subscriptions]) {
          if (isSysTopic(sub.matchFilter)) removeSubscription(broker, session, filter);
        }
      }
      presence(client, "disconnected");
    },
  };
  return {
    hooks,
    stop() {
      stopped = true;
      sys.stop();
      statusSubscribers.clear();
    },
  };
}
