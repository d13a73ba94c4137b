/**
 * Rebuild live sessions from what the session store kept (at start, before
 * any listener opens): subscriptions back in the index, queues and in-flight
 * deliveries (QoS 2 PUBREL state included), inbound QoS 2 ids, packet ids,
 * expiry deadlines and wills. A session that was connected when the broker
 * stopped has lost its connection: its expiry starts now and its will is
 * published (after its delay), as for any connection that ended without
 * DISCONNECT [MQTT-3.1.2-8].
 */
import type { StoredDelivery, StoredMessage, StoredState } from "../store/types.ts";
import type { Will } from "../mqtt/packet.ts";
import type { Broker } from "./broker.ts";
import type { Message } from "./message.ts";
import { NEVER_EXPIRES, type Outgoing, type Queued } from "./session.ts";
import { restoreDeliveries } from "./session_state.ts";
import { restoreSubscription } from "./session_subscriptions.ts";

export interface RestoreCounts {
  sessions: number;
  expired: number;
  queued: number;
  inflight: number;
}

export function restoreSessions(broker: Broker, state: StoredState): RestoreCounts {
  const journal = broker.journal;
  if (!journal) throw new Error("restoreSessions needs a broker with a session store");
  const counts: RestoreCounts = { sessions: 0, expired: 0, queued: 0, inflight: 0 };
  const messages = new Map<string, Message>();
  for (const [id, m] of state.messages) {
    const message = liveMessage(m);
    journal.remember(message, id);
    messages.set(id, message);
  }
  const now = Date.now();
  // Wills due now go once every session is back: one restored later may subscribe to them.
  const wills: [string, Will][] = [];
  const lifecycle = broker.lifecycle;
  for (const s of state.sessions) {
    const session = lifecycle.restored(s.clientId, s.expiryInterval, s.username);
    const was = { username: s.username, protocolVersion: s.protocolVersion };
    journal.adopt(session, { ...was, expiresAt: s.expiresAt, willAt: s.willAt });
    const will: Will | undefined = s.will ? { ...liveMessage(s.will) } : undefined;
    if (s.expiresAt !== undefined && s.expiresAt <= now) {
      // Its time ran out while the broker was down: a waiting will goes now, then the session.
      if (will && s.willAt !== undefined) wills.push([s.clientId, will]);
      lifecycle.destroy(session);
      counts.expired++;
      continue;
    }
    counts.sessions++;
    for (const sub of s.subscriptions) restoreSubscription(broker, session, sub);
    const queue: Queued[] = [];
    for (const d of s.queue) {
      const message = messages.get(d.messageId);
      if (message) queue.push({ message, ...deliveryFields(d) });
    }
    const inflight: [number, Outgoing][] = [];
    for (const f of s.inflight) {
      const message = messages.get(f.messageId);
      if (!message) continue;
      inflight.push([f.packetId, { message, ...deliveryFields(f), released: f.released }]);
    }
    restoreDeliveries(session, s.lastPacketId, queue, inflight, s.incomingQos2);
    counts.queued += queue.length;
    counts.inflight += inflight.length;

    // Deadlines: a session that was connected gets its full expiry from now.
    const wasConnected = s.expiresAt === undefined && s.willAt === undefined;
    let expiresAt = s.expiresAt;
    if (s.expiryInterval !== NEVER_EXPIRES) {
      expiresAt = lifecycle.expireLater(
        session,
        (s.expiresAt ?? now + s.expiryInterval * 1000) - now,
      );
    }
    let willAt = s.willAt;
    if (will) {
      const delay = Math.min(s.will!.delayInterval, s.expiryInterval);
      const at = s.willAt ?? (wasConnected ? now + delay * 1000 : undefined);
      if (at !== undefined && at > now) willAt = lifecycle.delayWill(session, will, at - now);
      else if (at !== undefined) {
        wills.push([s.clientId, will]);
        willAt = undefined;
      }
    }
    if (wasConnected || willAt !== s.willAt || expiresAt !== s.expiresAt) {
      journal.metaChanged(session, { expiresAt, willAt });
    }
  }
  for (const [clientId, will] of wills) lifecycle.publishWill(clientId, will);
  return counts;
}

function deliveryFields(d: StoredDelivery) {
  return {
    qos: d.qos,
    retain: d.retain,
    subscriptionIds: d.subscriptionIds ? [...d.subscriptionIds] : undefined,
    share: d.share,
  };
}

function liveMessage(m: Omit<StoredMessage, "id"> | StoredMessage): Message {
  const out: Message = {
    topic: m.topic,
    payload: m.payload,
    owned: true,
    qos: m.qos,
    retain: m.retain,
    properties: m.properties,
    expiresAt: m.expiresAt,
    from: m.from,
  };
  return out;
}
