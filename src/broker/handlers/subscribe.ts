import type { SubscribePacket } from "../../mqtt/packet.ts";
import { parseShared, topicFilterError } from "../../mqtt/topic.ts";
import type { Broker } from "../broker.ts";
import { MAX_SUBSCRIPTIONS_PER_CLIENT } from "../api.ts";
import type { Connection } from "../connection.ts";
import type { Message } from "../message.ts";
import { RetainedReplays } from "../retained_replay.ts";
import type { Subscription } from "../session.ts";
import { addSubscription, subscription } from "../session_subscriptions.ts";

/** SUBSCRIBE: validate each filter, store it, SUBACK, then send matching retained messages. */
export function handleSubscribe(
  broker: Broker,
  conn: Connection,
  p: SubscribePacket,
): void | Promise<void> {
  const session = conn.session!;
  const v5 = conn.version === 5;
  const subscriptionId = v5 ? p.properties?.subscriptionIdentifier?.[0] : undefined;
  if (v5 && session.incomingQos2.has(p.packetId)) {
    // The id still belongs to an unreleased QoS 2 message [MQTT-2.2.1-3].
    const reasonCodes = p.subscriptions.map(() => 0x91); // Packet Identifier in use
    conn.send({ type: 9, packetId: p.packetId, reasonCodes });
    return;
  }
  const quota = broker.options.maxSubscriptionsPerClient ?? MAX_SUBSCRIPTIONS_PER_CLIENT;
  const reasonCodes: number[] = [];
  const retainedFor: Subscription[] = [];
  for (const req of p.subscriptions) {
    const filter = req.topicFilter;
    if (topicFilterError(filter)) {
      reasonCodes.push(v5 ? 0x8f : 0x80); // Topic Filter invalid
      continue;
    }
    const shared = parseShared(filter);
    if (shared && !broker.options.shareTopic.enable) {
      reasonCodes.push(v5 ? 0x9e : 0x80); // Shared Subscriptions not supported
      continue;
    }
    if (shared && req.noLocal) return conn.close(0x82); // [MQTT-3.8.3-4]
    if (!broker.maySubscribe(conn.client!, filter, req.qos)) {
      reasonCodes.push(v5 ? 0x87 : 0x80); // Not authorized
      continue;
    }
    if (quota > 0 && session.subscriptions.size >= quota && !session.subscriptions.has(filter)) {
      reasonCodes.push(v5 ? 0x97 : 0x80); // Quota exceeded
      continue;
    }
    const sub = subscription(session, {
      filter,
      qos: req.qos,
      noLocal: v5 && !!req.noLocal,
      retainAsPublished: v5 && !!req.retainAsPublished,
      retainHandling: v5 ? (req.retainHandling ?? 0) : 0,
      subscriptionId,
    });
    // A subscription to the same filter replaces the old one [MQTT-3.8.4-3].
    const existed = addSubscription(broker, sub) !== undefined;
    reasonCodes.push(req.qos); // granted QoS [MQTT-3.9.3-..]
    // Retained messages: never on shared subscriptions; 5.0 Retain Handling 1/2.
    if (!shared && (sub.retainHandling === 0 || (sub.retainHandling === 1 && !existed))) {
      retainedFor.push(sub);
    }
  }
  const suback = () => {
    conn.send({ type: 9, packetId: p.packetId, reasonCodes });
    if (broker.hooks.length > 0) {
      p.subscriptions.forEach((req, i) => {
        if (reasonCodes[i] < 0x80) {
          broker.notify("onSubscribed", conn.client!, req.topicFilter, req.qos);
        }
      });
    }
    // Every matching retained message, streamed through the session's flow control.
    for (const sub of retainedFor) {
      replay(broker, sub, broker.store.retainedCursor(sub.matchFilter));
    }
  };
  // A persistent session's SUBACK (and the retained messages after it) waits until the
  // session store has the subscriptions: acknowledged means kept.
  if (session.journal) return session.journal.acknowledge(conn, suback);
  suback();
}

function replay(broker: Broker, sub: Subscription, source: Iterator<Message>): void {
  RetainedReplays.start(sub.session, sub, source, broker.limits);
}
