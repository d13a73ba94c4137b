import type { Properties, PublishPacket, QoS } from "../mqtt/packet.ts";
import { encode, publishSize } from "../mqtt/encoder.ts";
import { utf8Length } from "../mqtt/utf8.ts";
import type { Connection } from "./connection.ts";
import { isExpired, type Message, ownPayload, RangeMessage, remainingExpiry } from "./message.ts";
import { isOnline, type Outgoing, type Session } from "./session.ts";

/**
 * Getting one message to one session: QoS 0 straight to the socket, QoS 1/2
 * through the inflight window and the bounded queue. `deliver` returns true
 * when the session's queue is now so full that publishers should wait.
 */
export interface DeliveryLimits {
  maxInflight: number;
  maxQueuedMessages: number;
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
): boolean {
  const conn = session.connection;
  const online = conn !== undefined && isOnline(session);
  if (qos === 0) {
    // QoS 0 is not queued for offline clients, and dropped for congested ones.
    if (!online) return false;
    if (conn.congested) {
      conn.droppedQos0++;
      return false;
    }
    const now = Date.now();
    if (isExpired(message, now)) return false;
    if (cache && !subscriptionIds && conn.outAliasMaximum === 0) {
      const bytes = cache.get(conn, retain, now);
      if (fits(conn, bytes.length)) conn.sendBytes(bytes);
      return false;
    }
    sendPublish(conn, message, 0, retain, 0, false, subscriptionIds, now);
    return false;
  }
  if (online && session.queue.length === 0 && session.inflight.size < window(conn, limits)) {
    sendNew(
      session,
      conn,
      { message, qos, retain, subscriptionIds, share, released: false },
      false,
    );
    return false;
  }
  if (session.queue.length >= limits.maxQueuedMessages) {
    session.dropped++;
    return false;
  }
  const queued = { message: ownPayload(message), qos, retain, subscriptionIds, share };
  session.queue.push(queued);
  session.journal?.queued(session, queued);
  return online && !session.stalled && session.queue.length >= highWater(limits);
}

/**
 * A live subscriber whose queue is this full slows its publishers down
 * (they stop being read) instead of losing messages; an offline one does not.
 */
export function highWater(limits: DeliveryLimits): number {
  return Math.max(1, limits.maxQueuedMessages >> 1);
}

function lowWater(limits: DeliveryLimits): number {
  return limits.maxQueuedMessages >> 2;
}

/** Send queued deliveries while the inflight window has room. */
export function drainQueue(session: Session, limits: DeliveryLimits): void {
  const conn = session.connection;
  if (!conn || !conn.connected || conn.closing) return;
  const max = window(conn, limits);
  const now = Date.now();
  let taken = 0;
  while (taken < session.queue.length && session.inflight.size < max) {
    const q = session.queue[taken++];
    if (isExpired(q.message, now)) {
      session.journal?.dropped(session, q.message);
      continue; // [MQTT-3.3.2-5]
    }
    sendNew(session, conn, { ...q, released: false }, true);
  }
  if (taken > 0) session.queue.splice(0, taken);
  if (session.queue.length <= lowWater(limits)) {
    session.stalled = false;
    session.wakeWriters();
  }
}

/** After a session resumes: resend unacknowledged PUBLISH with DUP, and PUBREL [MQTT-4.4.0-1]. */
export function resendInflight(session: Session, conn: Connection): void {
  const now = Date.now();
  for (const [packetId, o] of session.inflight) {
    if (o.released) {
      conn.sendAck(6, packetId);
      continue;
    }
    const sent = sendPublish(
      conn,
      o.message,
      o.qos,
      o.retain,
      packetId,
      true,
      o.subscriptionIds,
      now,
    );
    // Too large for the new connection's Maximum Packet Size: discarded [MQTT-3.1.2-25].
    if (!sent) {
      session.inflight.delete(packetId);
      session.journal?.completed(session, packetId, o.message);
    }
  }
}

/** `fromQueue`: the delivery was queued (and stored as queued) before. */
function sendNew(session: Session, conn: Connection, o: Outgoing, fromQueue: boolean): void {
  const packetId = session.nextPacketId();
  const sent = sendPublish(
    conn,
    o.message,
    o.qos,
    o.retain,
    packetId,
    false,
    o.subscriptionIds,
    Date.now(),
  );
  // A message too large for the client is discarded as if delivered [MQTT-3.1.2-25].
  // In flight messages keep their range of the socket chunk: acknowledgements
  // come within round trips, and max-inflight bounds what one client can pin.
  if (sent) {
    session.inflight.set(packetId, o);
    session.journal?.sent(session, packetId, o, fromQueue);
  } else if (fromQueue) session.journal?.dropped(session, o.message);
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
): boolean {
  const properties = publishProperties(message, subscriptionIds, now);
  const topicLength = utf8Length(message.topic);
  // A RangeMessage's bytes are copied from its chunk: no view of them is made.
  let source: Uint8Array, start: number, length: number;
  if (message instanceof RangeMessage) {
    source = message.source;
    start = message.sourceStart;
    length = message.payloadLength;
  } else {
    source = message.payload;
    start = 0;
    length = source.length;
  }
  const size = publishSize(conn.version, topicLength, length, qos, properties);
  // Size is checked on the full topic: an alias only counts once the client received it.
  if (!fits(conn, size)) return false;
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

function fits(conn: Connection, length: number): boolean {
  return conn.version !== 5 || conn.clientMaximumPacketSize === 0 ||
    length <= conn.clientMaximumPacketSize;
}

function window(conn: Connection, limits: DeliveryLimits): number {
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
  if (known !== undefined) {
    return { ...packet, topic: "", properties: { ...packet.properties, topicAlias: known } };
  }
  if (aliases.size >= conn.outAliasMaximum) return packet;
  const alias = aliases.size + 1;
  aliases.set(packet.topic, alias);
  return { ...packet, properties: { ...packet.properties, topicAlias: alias } };
}
