/**
 * A PUBLISH decoded in range mode (PacketDecoder `payloadRanges`): its
 * payload stays a range of the bytes it was decoded from, and a view of it is
 * made only when something reads `payload`.
 *
 * Why: JavaScriptCore keeps a small typed array's bytes inside the object,
 * and the first view taken into it makes the engine move them to a buffer of
 * their own. With one PUBLISH per socket read (a steady, light load) that
 * happened for every message: measured on Bun at 10k msg/s, ~430 of ~1,300
 * bytes of garbage per message, and garbage is what sets the collector's
 * pauses and so the tail latency. The broker copies the range straight into
 * each subscriber's output instead.
 *
 * The same object is the message the broker routes (the `Message` of
 * src/broker/message.ts): the PUBLISH handler fills in the
 * fields below the packet's (publisher, expiry, forwarded properties) rather
 * than building a second object per message.
 */
import type { Properties, PublishPacket, QoS } from "./packet.ts";

export class RangePublish implements PublishPacket {
  // `declare` and one assignment each in the constructor: a class field with an initializer
  // is defined by a separate initializer step on JavaScriptCore, on every PUBLISH.
  declare readonly type: 3;
  /** Set again when a 5.0 topic alias names the topic. */
  declare topic: string;
  declare readonly qos: QoS;
  declare readonly retain: boolean;
  declare readonly dup: boolean;
  declare readonly packetId: number | undefined;
  /** As decoded; replaced by those forwarded to subscribers once routed as a message. */
  declare properties: Properties | undefined;
  /** The payload is source[sourceStart, +payloadLength). */
  declare source: Uint8Array;
  declare sourceStart: number;
  declare readonly payloadLength: number;
  /** Routed as a message: the publisher's client id (No Local, share strategies). */
  declare from: string | undefined;
  /** Routed as a message: 5.0 Message Expiry as an absolute time, ms since the epoch. */
  declare expiresAt: number | undefined;
  /** True once `payload` is a copy the message owns (ownPayload). */
  declare owned: boolean;
  /** A 3.1.1 QoS 2 PUBLISH in a cluster: its packet id (broker/message.ts). */
  declare qos2PacketId: number | undefined;
  declare private view: Uint8Array | undefined;

  constructor(
    topic: string,
    qos: QoS,
    retain: boolean,
    dup: boolean,
    packetId: number | undefined,
    properties: Properties | undefined,
    source: Uint8Array,
    sourceStart: number,
    payloadLength: number,
  ) {
    this.type = 3;
    this.topic = topic;
    this.qos = qos;
    this.retain = retain;
    this.dup = dup;
    this.packetId = packetId;
    this.properties = properties;
    this.source = source;
    this.sourceStart = sourceStart;
    this.payloadLength = payloadLength;
    this.from = undefined;
    this.expiresAt = undefined;
    this.owned = false;
    this.qos2PacketId = undefined;
    this.view = undefined;
  }

  get payload(): Uint8Array {
    return this.view ??= this.source.subarray(
      this.sourceStart,
      this.sourceStart + this.payloadLength,
    );
  }

  /** ownPayload() stores a copy: the chunk is let go. */
  set payload(bytes: Uint8Array) {
    this.view = bytes;
    this.source = bytes;
    this.sourceStart = 0;
  }
}
