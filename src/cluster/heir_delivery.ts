/**
 * What a dead node's heir read from the dead node's bus topic (kafka_drain.ts)
 * goes only to the sessions it inherited from that node: the other sessions
 * here got the message straight from its publisher's node already.
 *
 * QoS 2 messages are not delivered: the dead node may have stored them for
 * its sessions before it died (the heir loaded those from the store), and
 * their publisher got no PUBREC (the dead node never answered) and may send
 * them again. Either way a second copy would reach the subscriber; QoS 2 is
 * never delivered twice. QoS 0 and 1 are (QoS 1 is at least once).
 */
import type { Broker } from "../broker/broker.ts";
import { shareKey } from "../broker/router.ts";
import type { Subscription } from "../broker/session.ts";
import type { BusMessage } from "./types.ts";

export interface HeirCounts {
  /** Deliveries made to inherited sessions. */
  delivered: number;
  /** QoS 2 messages not delivered (see above). */
  qos2: number;
}

/** Deliver one message read from a dead node's topic to the inherited sessions it matches. */
export function deliverToInherited(
  broker: Broker,
  msg: BusMessage,
  inherited: ReadonlySet<string>,
  counts: HeirCounts,
): void {
  if (msg.kind !== "publish" || inherited.size === 0) return;
  const message = { ...msg.message, owned: true };
  if (message.qos === 2) {
    counts.qos2++;
    return;
  }
  // Per session its highest-QoS subscription (as one node delivers overlapping ones once).
  const best = new Map<string, Subscription>();
  const groups = new Map<string, Subscription>();
  for (const sub of broker.router.index.matchAll(message.topic)) {
    const id = sub.session.clientId;
    if (!inherited.has(id)) continue;
    if (sub.group) {
      // A share group's member for this message was on the dead node: one inherited member.
      const key = shareKey(sub);
      if (msg.shares?.includes(key) && !groups.has(key)) groups.set(key, sub);
      continue;
    }
    if (sub.noLocal && message.from === id) continue; // [MQTT-3.8.3-3]
    const seen = best.get(id);
    if (!seen || sub.qos > seen.qos) best.set(id, sub);
  }
  for (const sub of best.values()) {
    broker.router.deliverTo(sub, message, sub.retainAsPublished && message.retain);
  }
  for (const [key, sub] of groups) {
    broker.router.deliverTo(sub, message, sub.retainAsPublished && message.retain, undefined, key);
  }
  const n = best.size + groups.size;
  broker.stats.sent += n;
  counts.delivered += n;
}
