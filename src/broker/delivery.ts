import type { Properties, PublishPacket, QoS } from "../mqtt/packet.ts";
import { encode, encodedLength, publishSize } from "../mqtt/encoder.ts";
import { utf8Length } from "../mqtt/utf8.ts";
import type { Connection } from "./connection.ts";
import { isExpired, type Message, ownPayload, remainingExpiry } from "./message.ts";
import { RangePublish } from "../mqtt/publish_range.ts";
import { isOnline, type Outgoing, type Session } from "./session.ts";
import { completed, dequeued, enqueue, nextPacketId, sent, unqueued } from "./session_state.ts";
import type { DropCounters, DropLog } from "./drops.ts";
import type { ReadRights } from "./read_rights.ts";
import { subscriberWaits } from "./input_turns.ts";

/**
 * Getting one message to one session: QoS 0 straight to the socket, QoS 1/2
 * through the inflight window and the bounded queue. A session that cannot
 * keep up loses its own newest messages (counted); publishers never wait.
 */
export interface DeliveryLimits {
  readonly maxInflight: number;
  readonly maxQueuedMessages: number;
  /** Where undelivered messages are counted (the broker's stats.dropped). */
  readonly dropped: DropCounters;
  readonly dropLog?: DropLog;
  /** The receiving client's read rights, checked as each message goes out. */
  readonly readRights: ReadRights;
}

/** Reusable encodings of one QoS 0 PUBLISH for all subscribers of one publish call. */
export class Qos0Cache {
  private readonly bytes: (Uint8Array | undefined)[] = [undefined, undefined, undefined, undefined];
  message: Message | undefined;

  reset(message: Message): void {
    this.message = message;
    this.bytes.fill(undefined);
  }

  get(conn: Connection, retain: boolean, now: number): Uint8Array {
    const slot = (conn.version === 5 ? 2 : 0) + (retain ? 1 : 0);
    const cached = this.bytes[slot];
    if (cached) return cached;
    const b = encode(
      publishPacket(this.message!, 0, retain, undefined, false, undefined, now),
      conn.version,
    );
    this.bytes[slot] = b;
    return b;
  }
}

export function deliver(
  session: Session,
  message: Message,
  qos: QoS,
  retain: boolean,
  subscriptionIds: number[] | undefined,
  limits: DeliveryLimits,
  cache?: Qos0Cache,
  share?: string,
): void {
  const intercept = session.intercept; // a cluster moving the session (session.ts)
  if (intercept !== undefined && intercept(message, qos, retain, subscriptionIds, share)) return;
  const conn = session.connection;
  const online = conn !== undefined && isOnline(session);
  // Rights are checked where messages go out (queued ones when they leave the queue).
  if (online && !mayRead(conn, message, qos, share, limits)) return;
  // Past its expiry before onward delivery started: deleted for this subscriber [MQTT-3.3.2-5].
  if (message.expiresAt !== undefined && isExpired(message, Date.now())) {
    limits.dropped.expired++;
    return;
  }
  if (qos === 0) {
    // QoS 0 is not queued for offline clients; for a reader whose output backlog is
    // full it is that client's own loss.
    if (!online) return;
    if (conn.congested) return queueFull(session, limits);
    const now = Date.now();
    if (cache && !subscriptionIds && conn.outAliasMaximum === 0) {
      const bytes = cache.get(conn, retain, now);
      if (fits(conn, bytes.length)) {
        conn.sendBytes(bytes);
        countSent(conn, 0, payloadLength(message));
      } else limits.dropped.tooLarge++;
      return;
    }
    sendPublish(conn, message, 0, retain, 0, false, subscriptionIds, now, limits);
    return;
  }
  if (
    online && session.queue.length === 0 && session.inflight.size < inflightWindow(conn, limits)
  ) {
    sendNew(
      session,
      conn,
      { message, qos, retain, subscriptionIds, share, released: false },
      limits,
      false,
    );
    return;
  }
  // A connected client's window is full: its acknowledgements must be read promptly.
  if (online) subscriberWaits();
  // Full: the newest message is dropped (as Mosquitto does). What the client already has
  // queued or in flight stays in order, and QoS 1/2 in flight cannot be taken back anyway.
  if (session.queue.length >= limits.maxQueuedMessages) return queueFull(session, limits);
  enqueue(session, { message: ownPayload(message), qos, retain, subscriptionIds, share });
}

function mayRead(
  conn: Connection,
  message: Message,
  qos: QoS,
  share: string | undefined,
  limits: DeliveryLimits,
): boolean {
  if (limits.readRights.allows(conn, message.topic, qos, share)) return true;
  limits.dropped.notAuthorized++;
  return false;
}

function queueFull(session: Session, limits: DeliveryLimits): void {
  session.dropped++;
  limits.dropped.queueFull++;
  limits.dropLog?.queueFull(session, limits.maxQueuedMessages);
}

/** Send queued deliveries while the inflight window has room. */
export function drainQueue(session: Session, limits: DeliveryLimits): void {
  const conn = session.connection;
  if (!conn || !conn.connected || conn.closing) return;
  const max = inflightWindow(conn, limits);
  const now = Date.now();
  let taken = 0;
  while (taken < session.queue.length && session.inflight.size < max) {
    const q = session.queue.get(taken++)!;
    if (isExpired(q.message, now)) { // [MQTT-3.3.2-5]
      limits.dropped.expired++;
      unqueued(session, q.message);
      continue;
    }
    if (!mayRead(conn, q.message, q.qos, q.share, limits)) {
      unqueued(session, q.message);
      continue;
    }
    sendNew(session, conn, { ...q, released: false }, limits, true);
  }
  if (taken > 0) dequeued(session, taken);
  // Retained messages still to be sent on a SUBSCRIBE come after the queue.
  if (session.queue.length === 0) session.replay?.pump();
}

/** After a session resumes: resend unacknowledged PUBLISH with DUP, and PUBREL [MQTT-4.4.0-1]. */
export function resendInflight(session: Session, conn: Connection, limits: DeliveryLimits): void {
  const now = Date.now();
  for (const [packetId, o] of session.inflight) {
    if (o.released) {
      conn.sendAck(6, packetId);
      continue;
    }
    // A session resumed by another user (allow-cross-user-session) does not get what it may not read.
    if (!mayRead(conn, o.message, o.qos, o.share, limits)) {
      completed(session, packetId);
      continue;
    }
    const ok = sendPublish(
      conn,
      o.message,
      o.qos,
      o.retain,
      packetId,
      true,
      o.subscriptionIds,
      now,
      limits,
    );
    // Too large for the new connection's Maximum Packet Size: discarded [MQTT-3.1.2-25].
    if (!ok) completed(session, packetId);
  }
}

/** `fromQueue`: the delivery was queued (and stored as queued) before. */
function sendNew(
  session: Session,
  conn: Connection,
  o: Outgoing,
  limits: DeliveryLimits,
  fromQueue: boolean,
): void {
  const packetId = nextPacketId(session);
  const ok = sendPublish(
    conn,
    o.message,
    o.qos,
    o.retain,
    packetId,
    false,
    o.subscriptionIds,
    Date.now(),
    limits,
  );
  // A message too large for the client is discarded as if delivered [MQTT-3.1.2-25].
  // In flight messages keep their range of the socket chunk: acknowledgements
  // come within round trips, and max-inflight bounds what one client can pin.
  if (ok) sent(session, packetId, o, fromQueue);
  else if (fromQueue) unqueued(session, o.message);
}

/**
 * Encode one PUBLISH straight into the connection's output: no packet object
 * per recipient unless a topic alias rewrites it. False when it is too large
 * for the client, which then never gets it.
 */
function sendPublish(
  conn: Connection,
  message: Message,
  qos: QoS,
  retain: boolean,
  packetId: number,
  dup: boolean,
  subscriptionIds: number[] | undefined,
  now: number,
  limits: DeliveryLimits | undefined,
): boolean {
  const properties = publishProperties(message, subscriptionIds, now);
  const topicLength = utf8Length(message.topic);
  // A RangePublish's bytes are copied from its chunk: no view of them is made.
  let source: Uint8Array, start: number, length: number;
  if (message instanceof RangePublish) {
    source = message.source;
    start = message.sourceStart;
    length = message.payloadLength;
  } else {
    source = message.payload;
    start = 0;
    length = source.length;
  }
  const size = publishSize(conn.version, topicLength, length, qos, properties);
  // Checked on the full topic (a new alias is set with it); withTopicAlias checks its own size.
  if (!fits(conn, size)) {
    if (limits) limits.dropped.tooLarge++;
    return false;
  }
  countSent(conn, qos, length);
  if (conn.outAliasMaximum > 0) {
    const id = qos > 0 ? packetId : undefined;
    conn.send(
      withTopicAlias(conn, publishPacket(message, qos, retain, id, dup, subscriptionIds, now)),
    );
    return true;
  }
  conn.sendPublish(
    size,
    message.topic,
    topicLength,
    source,
    start,
    length,
    qos,
    retain,
    dup,
    packetId,
    properties,
  );
  return true;
}

/** One PUBLISH written to a client (typed-array slots: nothing allocated). */
function countSent(conn: Connection, qos: QoS, payloadBytes: number): void {
  const stats = conn.stats;
  stats.publishOut[qos]++;
  stats.publishOutBytes[qos] += payloadBytes;
}

function payloadLength(message: Message): number {
  return message instanceof RangePublish ? message.payloadLength : message.payload.length;
}

function fits(conn: Connection, length: number): boolean {
  return conn.version !== 5 || conn.clientMaximumPacketSize === 0 ||
    length <= conn.clientMaximumPacketSize;
}

export function inflightWindow(conn: Connection, limits: DeliveryLimits): number {
  // Never more unacknowledged QoS 1/2 than the client's Receive Maximum [MQTT-3.3.4-7].
  return Math.min(limits.maxInflight, conn.clientReceiveMaximum);
}

function publishPacket(
  message: Message,
  qos: QoS,
  retain: boolean,
  packetId: number | undefined,
  dup: boolean,
  subscriptionIds: number[] | undefined,
  now: number,
): PublishPacket {
  return {
    type: 3,
    topic: message.topic,
    payload: message.payload,
    qos,
    retain,
    dup,
    packetId,
    properties: publishProperties(message, subscriptionIds, now),
  };
}

/** The message's own properties, plus what this delivery adds (remaining expiry, subscription ids). */
function publishProperties(
  message: Message,
  subscriptionIds: number[] | undefined,
  now: number,
): Properties | undefined {
  let properties: Properties | undefined = message.properties;
  const expiry = remainingExpiry(message, now);
  if (expiry !== undefined || subscriptionIds) {
    properties = { ...properties };
    // The remaining lifetime is forwarded [MQTT-3.3.2-6].
    if (expiry !== undefined) properties.messageExpiryInterval = expiry;
    if (subscriptionIds) properties.subscriptionIdentifier = subscriptionIds;
  }
  return properties;
}

/** Replace a repeated topic by its alias; give new topics an alias while there is room. */
function withTopicAlias(conn: Connection, packet: PublishPacket): PublishPacket {
  const aliases = conn.outAliases ??= new Map();
  const known = aliases.get(packet.topic);
  if (known === undefined && aliases.size >= conn.outAliasMaximum) return packet;
  const topicAlias = known ?? aliases.size + 1;
  const topic = known === undefined ? packet.topic : "";
  const aliased = { ...packet, topic, properties: { ...packet.properties, topicAlias } };
  // The alias's 3 bytes (a short topic's name may be shorter) count toward the client's Maximum
  // Packet Size [MQTT-3.1.2-24]: past it, the full topic without an alias, which fits.
  if (conn.clientMaximumPacketSize && !fits(conn, encodedLength(aliased, 5))) return packet;
  if (known === undefined) aliases.set(packet.topic, topicAlias);
  return aliased;
}
