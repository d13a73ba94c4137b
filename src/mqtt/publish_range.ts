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
 * src/broker/message.ts, as `RangeMessage`): the PUBLISH handler fills in the
 * fields below the packet's (publisher, expiry, forwarded properties) rather
 * than building a second object per message.
 */
import type { Properties, PublishPacket, QoS } from "./packet.ts";

export class RangePublish implements PublishPacket {
  readonly type = 3;
  /** Routed as a message: the publisher's client id (No Local, share strategies). */
  from: string | undefined = undefined;
  /** Routed as a message: 5.0 Message Expiry as an absolute time, ms since the epoch. */
  expiresAt: number | undefined = undefined;
  /** True once `payload` is a copy the message owns (ownPayload). */
  owned = false;
  /** A 3.1.1 QoS 2 PUBLISH in a cluster: its packet id (broker/message.ts). */
  qos2PacketId: number | undefined = undefined;
  private view: Uint8Array | undefined = undefined;

  constructor(
    /** Set again when a 5.0 topic alias names the topic. */
    public topic: string,
    readonly qos: QoS,
    readonly retain: boolean,
    readonly dup: boolean,
    readonly packetId: number | undefined,
    /** As decoded; replaced by those forwarded to subscribers once routed as a message. */
    public properties: Properties | undefined,
    /** The payload is source[sourceStart, +payloadLength). */
    public source: Uint8Array,
    public sourceStart: number,
    readonly payloadLength: number,
  ) {}

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
