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
 * each subscriber's output instead (see RangeMessage).
 */
import type { Properties, PublishPacket, QoS } from "./packet.ts";

export class RangePublish implements PublishPacket {
  readonly type = 3;
  private view: Uint8Array | undefined = undefined;

  constructor(
    readonly topic: string,
    readonly qos: QoS,
    readonly retain: boolean,
    readonly dup: boolean,
    readonly packetId: number | undefined,
    readonly properties: Properties | undefined,
    /** The payload is source[start, end). */
    readonly source: Uint8Array,
    readonly start: number,
    readonly end: number,
  ) {}

  get payload(): Uint8Array {
    return this.view ??= this.source.subarray(this.start, this.end);
  }
}
