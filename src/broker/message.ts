import type { Properties, QoS } from "../mqtt/packet.ts";

/**
 * An application message as the broker routes it: what a PUBLISH carried,
 * independent of who receives it. Immutable once routed; many sessions may
 * hold the same object in their queues.
 */
export interface Message {
  readonly topic: string;
  /** May be a view into a socket chunk until `ownPayload` copies it. */
  payload: Uint8Array;
  /** True once `payload` is a copy the message owns. */
  owned?: boolean;
  readonly qos: QoS;
  readonly retain: boolean;
  /** 5.0 properties forwarded to subscribers (never topicAlias / subscriptionIdentifier). */
  readonly properties?: Properties;
  /** Absolute time (ms since epoch) after which the message is not delivered; 5.0 Message Expiry. */
  readonly expiresAt?: number;
  /** Client id of the publisher (No Local, ignore-client-self-pub, the `hash` share strategy). */
  readonly from?: string;
  /** Published by the broker itself ($SYS, bridges): not counted as a received message. */
  readonly internal?: boolean;
  /**
   * A 3.1.1 client's QoS 2 PUBLISH in a cluster: its packet id. Refused, such a client is
   * closed and must send the message again with that id [MQTT-4.4.0-1]; a cluster knows it.
   */
  qos2PacketId?: number;
}

/**
 * Copy the payload out of the socket chunk it was decoded from, once, before
 * the message outlives the current tick (retained, queued, in flight), so a
 * small message does not pin a large chunk in memory.
 */
export function ownPayload(message: Message): Message {
  if (!message.owned) {
    const p = message.payload;
    if (p.byteOffset !== 0 || p.byteLength !== p.buffer.byteLength) message.payload = p.slice();
    message.owned = true;
  }
  return message;
}

/** Properties that describe the message itself and travel to subscribers [MQTT-3.3.2-17..]. */
export function forwardedProperties(props: Properties | undefined): Properties | undefined {
  if (!props) return undefined;
  const out: Properties = {};
  let any = false;
  if (props.payloadFormatIndicator !== undefined) {
    out.payloadFormatIndicator = props.payloadFormatIndicator;
    any = true;
  }
  if (props.contentType !== undefined) (out.contentType = props.contentType), (any = true);
  if (props.responseTopic !== undefined) (out.responseTopic = props.responseTopic), (any = true);
  if (props.correlationData !== undefined) {
    out.correlationData = props.correlationData;
    any = true;
  }
  if (props.userProperties?.length) (out.userProperties = props.userProperties), (any = true);
  return any ? out : undefined;
}

/** Seconds left before expiry, rounded up, or undefined when the message never expires. */
export function remainingExpiry(msg: Message, now: number): number | undefined {
  if (msg.expiresAt === undefined) return undefined;
  return Math.max(0, Math.ceil((msg.expiresAt - now) / 1000));
}

export function isExpired(msg: Message, now: number): boolean {
  return msg.expiresAt !== undefined && msg.expiresAt <= now;
}
