import type { PublishPacket } from "../../mqtt/packet.ts";
import type { Broker } from "../broker.ts";
import type { Connection } from "../connection.ts";
import type { Session } from "../session.ts";
import type { PendingWrite } from "../journal_write.ts";
import { forwardedProperties, type Message } from "../message.ts";
import { RangePublish } from "../../mqtt/publish_range.ts";
import { TOPIC_ALIAS_MAXIMUM } from "./connect.ts";
import { incomingAdded, incomingRemoved } from "../session_state.ts";
import { ackWhenHeld, hasHeldAcks, heldQos2, holdQos2 } from "./held_ack.ts";

const utf8 = new TextDecoder("utf-8", { fatal: true });

/**
 * An incoming PUBLISH: resolve 5.0 topic aliases, route, acknowledge per QoS.
 * The common one (QoS 0 or 1, no 5.0 properties) takes a short path: the
 * decoded packet is routed as the message itself, and the checks that only
 * 5.0 properties or QoS 2 need are not on it (less code for the JIT to
 * compile and run per message; the rest is in handleAnyPublish).
 */
export function handlePublish(
  broker: Broker,
  conn: Connection,
  p: PublishPacket,
): void | Promise<void> {
  const qos = p.qos;
  const session = conn.session!;
  if (
    qos === 2 || !(p instanceof RangePublish) ||
    // 5.0: properties, or a QoS 1 id still held by a QoS 2 message (0x91, handleAnyPublish).
    (conn.version === 5 && (p.properties || (qos === 1 && session.incomingQos2.has(p.packetId!))))
  ) {
    return handleAnyPublish(broker, conn, p);
  }
  const stats = broker.stats;
  stats.publishIn[qos]++;
  stats.publishInBytes[qos] += p.payloadLength;
  // The connection is its client's ClientInfo (not the `client` getter: one call less).
  if (!broker.mayPublish(conn, p.topic, qos, p.retain)) {
    return refuseUnauthorized(conn, session, p, conn.version === 5);
  }
  p.from = session.clientId;
  return route(broker, conn, session, p, p);
}

/** Any PUBLISH: 5.0 properties (topic alias, payload format, expiry), QoS 2 and its resends. */
function handleAnyPublish(
  broker: Broker,
  conn: Connection,
  p: PublishPacket,
): void | Promise<void> {
  const session = conn.session!;
  const stats = broker.stats;
  stats.publishIn[p.qos]++;
  stats.publishInBytes[p.qos] += p instanceof RangePublish ? p.payloadLength : p.payload.length;
  let topic = p.topic;
  const props = p.properties;
  const v5 = conn.version === 5;
  if (v5 && props) {
    // A client never sends Subscription Identifiers [MQTT-3.3.4-6].
    if (props.subscriptionIdentifier) return conn.close(0x82);
    const alias = props.topicAlias;
    if (alias !== undefined) {
      const max = broker.options.topicAliasMaximum ?? TOPIC_ALIAS_MAXIMUM;
      if (alias === 0 || alias > max) return conn.close(0x94); // [MQTT-3.3.2-9]
      if (topic === "") {
        const known = conn.topicAliases?.get(alias);
        if (known === undefined) return conn.close(0x82); // unknown alias [MQTT-3.3.4-..]
        topic = known;
      } else {
        (conn.topicAliases ??= new Map()).set(alias, topic);
      }
    }
    if (props.payloadFormatIndicator === 1 && !isUtf8(p.payload)) {
      // Payload Format Invalid: refuse this message, keep the connection [MQTT-3.3.2-4].
      if (p.qos > 0) conn.sendAck(p.qos === 1 ? 4 : 5, p.packetId!, 0x99);
      return;
    }
  }

  if (!broker.mayPublish(conn.client!, topic, p.qos, p.retain)) {
    return refuseUnauthorized(conn, session, p, v5);
  }

  if (p.qos === 1 && v5 && session.incomingQos2.has(p.packetId!)) {
    // The id still belongs to an unreleased QoS 2 message [MQTT-2.2.1-3].
    conn.sendAck(4, p.packetId!, 0x91); // Packet Identifier in use
    return;
  }
  if (p.qos === 2) {
    if (session.incomingQos2.has(p.packetId!)) {
      // A resend of a message we already have: acknowledge, never route twice [MQTT-4.3.3-2];
      // if a hook still holds the first copy, the PUBREC waits for it as the first one does,
      // and with a session store, for the store as well; in a cluster, for a fenced session's
      // copy of it on its way to that session's holder.
      const id = p.packetId!;
      const send = () => conn.sendAck(5, id);
      const journal = broker.journal;
      const ack = journal ? () => void journal.acknowledge(conn, send) : send;
      const hook = broker.holding ? heldQos2(session, id) : undefined;
      const rescued = broker.cluster?.resendWaits?.(session.clientId);
      // Acknowledgements after it queue behind it [MQTT-4.6.0-2].
      if (rescued) broker.holding = true;
      const held = hook && rescued ? Promise.all([hook, rescued]).then(() => {}) : hook ?? rescued;
      if (held || (broker.holding && hasHeldAcks(conn))) {
        ackWhenHeld(conn, held, ack, (e) => refuse(conn, session, p, e));
      } else ack();
      return;
    }
    if (v5 && session.incomingQos2.size >= broker.options.maxInflight) {
      return conn.close(0x93); // Receive Maximum exceeded [MQTT-3.3.4-9]
    }
  }

  const expiry = v5 ? props?.messageExpiryInterval : undefined;
  const properties = v5 ? forwardedProperties(props) : undefined;
  const expiresAt = expiry !== undefined ? Date.now() + expiry * 1000 : undefined;
  let message: Message;
  if (p instanceof RangePublish) {
    // The packet becomes the message: what subscribers get in place of what the client sent.
    p.topic = topic;
    p.properties = properties;
    p.expiresAt = expiresAt;
    p.from = session.clientId;
    message = p;
  } else {
    message = {
      topic,
      payload: p.payload,
      qos: p.qos,
      retain: p.retain,
      properties,
      expiresAt,
      from: session.clientId,
    };
  }
  if (p.qos === 2 && !v5 && broker.cluster) message.qos2PacketId = p.packetId;
  return route(broker, conn, session, p, message);
}

/** Not authorized: dropped, the connection stays (5.0 tells why with 0x87). */
function refuseUnauthorized(conn: Connection, session: Session, p: PublishPacket, v5: boolean) {
  if (p.qos === 1) conn.sendAck(4, p.packetId!, 0x87);
  else if (p.qos === 2) {
    if (!v5) incomingAdded(session, p.packetId!); // 3.1.1 still completes the flow
    conn.sendAck(5, p.packetId!, 0x87);
  }
}

/** Route the message, then acknowledge: at once, or when a hook or the cluster says so. */
function route(
  broker: Broker,
  conn: Connection,
  session: Session,
  p: PublishPacket,
  message: Message,
): void | Promise<void> {
  // A slow subscriber never holds the publisher back: it loses its own excess (delivery.ts).
  const routed = broker.publish(message);
  const held = broker.held;
  if (held || (p.qos > 0 && broker.holding && hasHeldAcks(conn))) {
    return acknowledgeHeld(broker, conn, session, p, message, routed, held);
  }
  if (routed instanceof Promise) {
    // Routed after its retained write (and, in a cluster, the other nodes' answer): its
    // deliveries' batch may have been written meanwhile (Broker.carriers).
    return routed.then((n) => acknowledge(broker, conn, p, n, broker.takeCarrier(message)));
  }
  if (p.qos > 0) acknowledge(broker, conn, p, routed); // QoS 0: not a call per message
}

/** A hook keeps the message (e.g. ack-after-kafka): acknowledge when it says so, reading on. */
function acknowledgeHeld(
  broker: Broker,
  conn: Connection,
  session: Session,
  p: PublishPacket,
  message: Message,
  routed: number | Promise<number>,
  held: Promise<void> | undefined,
): void | Promise<void> {
  broker.held = undefined;
  if (p.qos === 2) {
    incomingAdded(session, p.packetId!); // a resend is not routed twice
    if (held) holdQos2(session, p.packetId!, held);
  }
  if (p.qos > 0) {
    // The batch holding its deliveries may be written, and fail, while the ack is held.
    let wait = held, ack: () => void;
    if (routed instanceof Promise) {
      // The count is read when the wait settles, so the ack itself goes synchronously from
      // the connection's held queue: a `.then` there would let later acks overtake it
      // [MQTT-4.6.0-2].
      let count = 0;
      const counted = routed.then((n) => void (count = n));
      wait = held ? Promise.all([held, counted]).then(() => {}) : counted;
      ack = () => acknowledge(broker, conn, p, count, broker.takeCarrier(message));
    } else {
      // Routed already: only `held` to wait for (a promise of the count per message cost ~7%
      // of a cluster node's CPU forwarding QoS 1 to another node).
      const carrier = broker.journal?.carrier(message);
      ack = () => acknowledge(broker, conn, p, routed, carrier);
    }
    ackWhenHeld(conn, wait, ack, (e) => refuse(conn, session, p, e));
  }
  return routed instanceof Promise ? routed.then(() => {}) : undefined;
}

/**
 * PUBACK or PUBREC once the message is routed to `count` sessions, and, with a
 * session store, once it is stored for every persistent session that gets it:
 * `carrier`, the batch that took its deliveries when that may be written
 * already (held, or routed late); if it failed, the connection is closed as for
 * any batch failing under an acknowledgement (the client resends; for 5.0 a
 * PUBACK with 0x80 would be final).
 */
function acknowledge(
  broker: Broker,
  conn: Connection,
  p: PublishPacket,
  count: number,
  carrier?: PendingWrite,
): void {
  if (p.qos === 0) return;
  // 5.0: 0x10 tells the publisher nobody matched (dropped for 3.x by sendAck).
  const reasonCode = count === 0 ? 0x10 : 0;
  const type = p.qos === 1 ? 4 : 5; // [MQTT-4.3.2-2] [MQTT-4.3.3-2]
  const id = p.packetId!;
  // A held acknowledgement may come after the connection ended (session gone from it).
  const session = conn.session;
  if (p.qos === 2 && session) incomingAdded(session, id);
  const journal = broker.journal;
  if (!journal) return conn.sendAck(type, id, reasonCode);
  const send = () => conn.sendAck(type, id, reasonCode);
  // Queued on the open or writing batch, which settles no earlier than `carrier`.
  journal.acknowledge(conn, carrier ? carrier.unlessFailed(conn, send) : send);
}

/**
 * A held message the hook could not keep: 5.0 says so (0x80); 3.1.1 can only close.
 * `session` is the publisher's at receipt: the connection may have ended meanwhile, and a
 * resend after a resume must then be taken as new, not acknowledged as kept.
 */
function refuse(conn: Connection, session: Session, p: PublishPacket, reason: unknown): void {
  if (p.qos === 2) incomingRemoved(session, p.packetId!);
  if (conn.version === 5) {
    conn.sendAck(p.qos === 1 ? 4 : 5, p.packetId!, 0x80); // Unspecified error
  } else {
    conn.drop(
      `a QoS ${p.qos} message was not kept (${String(reason)}); 3.1.1 cannot refuse it, ` +
        "so the client sends it again after reconnecting",
    );
  }
}

export function isUtf8(bytes: Uint8Array): boolean {
  try {
    utf8.decode(bytes);
    return true;
  } catch {
    return false;
  }
}
