/**
 * The changes to a session's delivery state — its queue, its in-flight
 * window, its inbound QoS 2 packet ids, its packet ids — made in one place,
 * so each one also reaches the session store when the session is persistent
 * (`session.journal`; absent for clean sessions and in the in-memory mode,
 * where these are the plain collection operations). Open, resume, takeover,
 * disconnect and expiry change in session_lifecycle.ts, subscriptions in
 * session_subscriptions.ts.
 */
import type { Message } from "./message.ts";
import { type Outgoing, type Queued, type Session, writableState } from "./session.ts";

/** Append a delivery to the queue (offline, or no in-flight room). */
export function enqueue(session: Session, q: Queued): void {
  writableState(session).queue.push(q);
  session.journal?.queued(session, q);
}

/** A queued delivery left the queue without being sent (expired, not authorized, moved). */
export function unqueued(session: Session, message: Message): void {
  session.journal?.dropped(session, message);
}

/** The first `n` queued deliveries are gone (each already sent, or passed to `unqueued`). */
export function dequeued(session: Session, n: number): void {
  writableState(session).queue.dropFront(n);
}

/** Next free packet id (1..65535), skipping ids still in flight [MQTT-2.3.1-4]. */
export function nextPacketId(session: Session): number {
  const s = writableState(session);
  for (let i = 0; i < 65535; i++) {
    s.lastPacketId = s.lastPacketId === 65535 ? 1 : s.lastPacketId + 1;
    if (!s.inflight.has(s.lastPacketId)) return s.lastPacketId;
  }
  throw new Error("no free packet identifier"); // unreachable while inflight <= 65535
}

/** A delivery was sent with `packetId`; `fromQueue` when it was queued before. */
export function sent(session: Session, packetId: number, o: Outgoing, fromQueue: boolean): void {
  writableState(session).inflight.set(packetId, o);
  session.journal?.sent(session, packetId, o, fromQueue);
}

/** PUBREC received: PUBREL sent, PUBCOMP awaited [MQTT-4.3.3-3]. */
export function released(session: Session, packetId: number, o: Outgoing): void {
  (o as { released: boolean }).released = true;
  session.journal?.released(session, packetId);
}

/** The delivery with `packetId` ends (acknowledged, refused, or dropped); returns it. */
export function completed(session: Session, packetId: number): Outgoing | undefined {
  const o = session.inflight.get(packetId);
  if (!o) return undefined;
  writableState(session).inflight.delete(packetId);
  session.journal?.completed(session, packetId, o.message);
  return o;
}

/**
 * A shared-subscription member went offline or its session ends (MQTT 5.0 4.8.2): offers each
 * QoS 1 delivery in flight (oldest first), then each queued one, to `move` (true: it went to
 * another member) and takes those out of this session. QoS 2 in flight stays: it must be
 * completed with this member [MQTT-4.8.2-4]. What no other member took stays too: in flight with
 * its packet id, resent with DUP when the member is back [MQTT-4.4.0-1].
 */
export function moveShared(session: Session, move: (q: Queued) => boolean): void {
  const s = writableState(session);
  for (const [id, o] of [...s.inflight]) {
    if (o.share && o.qos === 1 && move(o)) completed(session, id);
  }
  const keep: Queued[] = [];
  for (const q of s.queue) {
    if (q.share && move(q)) unqueued(session, q.message);
    else keep.push(q);
  }
  if (keep.length < s.queue.length) {
    s.queue.clear();
    for (const q of keep) s.queue.push(q);
  }
}

/** The session ends: its deliveries go (the journal deletes the stored session as a whole). */
export function clearDeliveries(session: Session): void {
  const s = writableState(session);
  s.inflight.clear();
  s.queue.clear();
}

/** Inbound QoS 2: the PUBLISH with `packetId` is kept until PUBREL [MQTT-4.3.3-2]. */
export function incomingAdded(session: Session, packetId: number): void {
  if (session.incomingQos2.has(packetId)) return;
  writableState(session).incomingQos2.add(packetId);
  session.journal?.incoming(session, packetId, true);
}

/** Inbound QoS 2: released (PUBREL) or refused; false when the id was unknown. */
export function incomingRemoved(session: Session, packetId: number): boolean {
  if (!writableState(session).incomingQos2.delete(packetId)) return false;
  session.journal?.incoming(session, packetId, false);
  return true;
}

/** Loaded from the store (restore.ts): the deliveries as they were, nothing written back. */
export function restoreDeliveries(
  session: Session,
  lastPacketId: number,
  queue: readonly Queued[],
  inflight: readonly (readonly [number, Outgoing])[],
  incomingQos2: readonly number[],
): void {
  const s = writableState(session);
  s.lastPacketId = lastPacketId;
  for (const q of queue) s.queue.push(q);
  for (const [packetId, o] of inflight) s.inflight.set(packetId, o);
  for (const id of incomingQos2) s.incomingQos2.add(id);
}
