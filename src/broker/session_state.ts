/**
 * The changes to a session's delivery state — its queue, its in-flight
 * window, its inbound QoS 2 packet ids — made in one place, so each one also
 * reaches the session store when the session is persistent (`session.journal`;
 * absent for clean sessions and in the in-memory mode, where these are the
 * plain collection operations). Subscriptions, open/resume/expiry and
 * deadlines change in broker.ts and handlers/connect.ts, which call the
 * journal the same way.
 */
import type { Message } from "./message.ts";
import type { Outgoing, Queued, Session } from "./session.ts";

/** Append a delivery to the queue (offline, or no in-flight room). */
export function enqueue(session: Session, q: Queued): void {
  session.queue.push(q);
  session.journal?.queued(session, q);
}

/** A queued delivery left the queue without being sent (expired, not authorized, moved). */
export function unqueued(session: Session, message: Message): void {
  session.journal?.dropped(session, message);
}

/** A delivery was sent with `packetId`; `fromQueue` when it was queued before. */
export function sent(session: Session, packetId: number, o: Outgoing, fromQueue: boolean): void {
  session.inflight.set(packetId, o);
  session.journal?.sent(session, packetId, o, fromQueue);
}

/** PUBREC received: PUBREL sent, PUBCOMP awaited [MQTT-4.3.3-3]. */
export function released(session: Session, packetId: number, o: Outgoing): void {
  o.released = true;
  session.journal?.released(session, packetId);
}

/** The delivery with `packetId` ends (acknowledged, refused, or dropped); returns it. */
export function completed(session: Session, packetId: number): Outgoing | undefined {
  const o = session.inflight.get(packetId);
  if (!o) return undefined;
  session.inflight.delete(packetId);
  session.journal?.completed(session, packetId, o.message);
  return o;
}

/** Inbound QoS 2: the PUBLISH with `packetId` is kept until PUBREL [MQTT-4.3.3-2]. */
export function incomingAdded(session: Session, packetId: number): void {
  if (session.incomingQos2.has(packetId)) return;
  session.incomingQos2.add(packetId);
  session.journal?.incoming(session, packetId, true);
}

/** Inbound QoS 2: released (PUBREL) or refused; false when the id was unknown. */
export function incomingRemoved(session: Session, packetId: number): boolean {
  if (!session.incomingQos2.delete(packetId)) return false;
  session.journal?.incoming(session, packetId, false);
  return true;
}
