/**
 * Incremental packet framing: feed it whatever the socket delivers, get whole
 * packets back in order. A packet lying within one chunk is decoded in place
 * (payloads are views of the chunk); only a packet split across chunks is
 * copied, into one buffer of its exact size (or a doubling one while it keeps
 * arriving in small pieces).
 */
import { decodePacket, decodePublish, PACKET_NAMES } from "./decode_packet.ts";
import { MqttSyntaxError } from "./errors.ts";
import type { ConnectPacket, Packet, ProtocolVersion } from "./packet.ts";
import { Reader } from "./reader.ts";

const EMPTY = new Uint8Array(0);

/** Largest remaining length (1.5.5) plus the largest fixed header. */
export const MAX_PACKET_SIZE = 268435455 + 5;

/**
 * Decoding one packet is synchronous and the reader is released before the
 * packet is handed on, so every decoder shares one (a reader per connection
 * would be memory held by every idle connection).
 */
const reader = new Reader();
/** Fixed header length of the last header parsed (read at once: shared like the reader). */
let headerLen = 0;

const OWNED = 1;
const FAILED = 2;
const RANGES = 4;
/** Bits from here up hold the protocol level (0: not known yet). */
const VERSION_SHIFT = 3;

export interface DecoderOptions {
  /** Largest whole packet (fixed header included) accepted, bytes. */
  maximumPacketSize?: number;
  /** Decode PUBLISH as RangePublish (payload made on demand): the broker's mode. */
  payloadRanges?: boolean;
}

export class PacketDecoder {
  /**
   * Protocol level used for non-CONNECT packets. Undefined until a CONNECT
   * with a supported level is decoded, then set from it (so later packets in
   * the same chunk decode with the right version). The broker may also set it.
   *
   * A CONNECT with a valid protocol name but an unsupported level is returned,
   * not thrown: its protocolVersion is then the raw level byte (or 0 when a
   * known level comes with the other version's name, e.g. "MQTT" + 3), and
   * the rest is read as 3.1.1 as far as possible. The broker answers CONNACK
   * 0x01 (3.x format) and closes [MQTT-3.1.2-2].
   * (Kept in `flags`: every idle connection has a decoder.)
   */
  get version(): ProtocolVersion | undefined {
    return (this.flags >> VERSION_SHIFT) as ProtocolVersion || undefined;
  }
  set version(v: ProtocolVersion | undefined) {
    this.flags = (this.flags & ((1 << VERSION_SHIFT) - 1)) | ((v ?? 0) << VERSION_SHIFT);
  }
  maximumPacketSize: number;

  /**
   * Bytes of an incomplete packet: first a view of the chunk it started in
   * (no copy), then, once a third chunk is involved, an owned buffer grown by
   * doubling, so tiny chunks cost amortized O(1) per byte, not a view each.
   */
  private pending: Uint8Array = EMPTY;
  private pendingLen = 0;
  /** Total size of the pending packet, -1 while its fixed header is incomplete. */
  private pendingTotal = -1;
  /**
   * OWNED (pending is our buffer, not a view), FAILED, RANGES (payloadRanges),
   * the version: one field instead of four, as every idle connection has a decoder.
   */
  private flags = 0;

  constructor(opts: DecoderOptions = {}) {
    this.maximumPacketSize = opts.maximumPacketSize ?? MAX_PACKET_SIZE;
    if (opts.payloadRanges) this.flags = RANGES;
  }

  /**
   * Decode as many complete packets as the buffered bytes hold, calling
   * onPacket for each, in order, with its type (from the fixed header);
   * keep a partial packet for the next call.
   * Throws MqttSyntaxError on malformed input, after which the decoder is
   * unusable. The decoder keeps views of `chunk`: do not reuse its buffer.
   * onPacket must not throw (if it does, the decoder is unusable too).
   *
   * With a budget, stops at the first packet boundary at least `limit` bytes
   * past `start` and at least `minPackets` packets in, if at least `limit`
   * bytes are left (a smaller tail is taken now), or after `maxPackets`
   * packets whatever their size, and returns where it stopped in `chunk`
   * (then nothing is kept: feed the rest again, from there, before any newer
   * chunk); returns chunk.length once all was taken.
   * A `start` above 0 is only for such a rest.
   */
  feed(
    chunk: Uint8Array,
    onPacket: (packet: Packet, type: number) => void,
    start = 0,
    limit = Infinity,
    minPackets = 1,
    maxPackets = Infinity,
  ): number {
    if (this.flags & FAILED) {
      throw new MqttSyntaxError("Cannot decode: the stream failed earlier", 0x81);
    }
    try {
      return this.run(chunk, onPacket, start, limit, minPackets, maxPackets);
    } catch (e) {
      this.flags |= FAILED;
      throw e;
    }
  }

  private run(
    chunk: Uint8Array,
    onPacket: (packet: Packet, type: number) => void,
    start: number,
    limit: number,
    minPackets: number,
    maxPackets: number,
  ): number {
    const len = chunk.length;
    // Called with nothing pending too: a branch around it would be code that JavaScriptCore's
    // optimized `run`, compiled while every packet came whole, has never seen run.
    let pos = this.completePending(chunk, start, onPacket);
    let packets = pos === start ? 0 : 1;
    while (pos < len) {
      if (pos - start >= limit && packets >= minPackets && len - pos >= limit) return pos;
      if (packets >= maxPackets) return pos;
      const total = this.header(chunk, pos, len);
      if (total < 0 || pos + total > len) {
        this.keep(chunk.subarray(pos), total);
        return len;
      }
      this.decode(chunk, pos, pos + total, onPacket);
      pos += total;
      packets++;
    }
    return len;
  }

  /**
   * Complete the packet an earlier chunk left pending, if any, with the start of `chunk`;
   * returns where the next packet starts (`start` when none was pending, chunk.length when
   * the chunk went into the pending packet, which is still incomplete).
   */
  private completePending(
    chunk: Uint8Array,
    start: number,
    onPacket: (packet: Packet, type: number) => void,
  ): number {
    if (this.pendingLen === 0) return start;
    const len = chunk.length;
    let pos = start;
    if (this.pendingTotal < 0) {
      // The fixed header (at most 5 bytes) was split: join the few bytes needed.
      const head = new Uint8Array(this.pendingLen + Math.min(len, 5));
      head.set(this.pending.subarray(0, this.pendingLen));
      head.set(chunk.subarray(0, 5), this.pendingLen);
      const total = this.header(head, 0, head.length);
      if (total < 0) {
        this.keep(head, -1);
        return len;
      }
      pos = headerLen - this.pendingLen;
      this.keep(head.subarray(0, headerLen), total);
    }
    const need = this.pendingTotal - this.pendingLen;
    if (len - pos < need) {
      this.append(chunk.subarray(pos));
      return len;
    }
    this.append(chunk.subarray(pos, pos + need));
    const whole = this.pending;
    this.keep(EMPTY, -1);
    this.pendingLen = 0;
    this.header(whole, 0, whole.length);
    this.decode(whole, 0, whole.length, onPacket);
    return pos + need;
  }

  /** Start a pending packet with a view of `bytes` (not copied). */
  private keep(bytes: Uint8Array, total: number): void {
    this.pending = bytes;
    this.flags &= ~OWNED;
    this.pendingLen = bytes.length;
    this.pendingTotal = total;
  }

  /** Add bytes to the pending packet (whose total size is known). */
  private append(bytes: Uint8Array): void {
    const total = this.pendingTotal;
    const len = this.pendingLen + bytes.length;
    if (!(this.flags & OWNED) || len > this.pending.length) {
      // Completing in one go allocates exactly; otherwise grow by doubling.
      const cap = len === total ? total : Math.min(total, Math.max(256, len * 2));
      const buf = new Uint8Array(cap);
      buf.set(this.pending.subarray(0, this.pendingLen));
      this.pending = buf;
      this.flags |= OWNED;
    }
    this.pending.set(bytes, this.pendingLen);
    this.pendingLen = len;
  }

  /**
   * Parse the fixed header at buf[pos]: returns the whole packet's size, or
   * -1 if the header is incomplete. Sets headerLen.
   */
  private header(buf: Uint8Array, pos: number, end: number): number {
    let value = 0, mult = 1;
    for (let i = pos + 1; i < pos + 5; i++) {
      if (i >= end) return -1;
      const b = buf[i];
      value += (b & 0x7f) * mult;
      if ((b & 0x80) === 0) {
        headerLen = i + 1 - pos;
        const total = headerLen + value;
        if (total > this.maximumPacketSize) {
          // Checked before buffering the body.
          throw new MqttSyntaxError(
            `Cannot decode ${PACKET_NAMES[buf[pos] >> 4]}: packet of ${total} bytes exceeds ` +
              `the maximum packet size ${this.maximumPacketSize}`,
            0x95,
            0,
          );
        }
        return total;
      }
      mult *= 128;
    }
    // A 5th length byte is malformed (1.5.5).
    throw new MqttSyntaxError(
      `Cannot decode ${PACKET_NAMES[buf[pos] >> 4]}: remaining length is longer than 4 bytes`,
      0x81,
      4,
    );
  }

  private decode(
    buf: Uint8Array,
    start: number,
    end: number,
    onPacket: (packet: Packet, type: number) => void,
  ): void {
    const r = reader;
    r.buf = buf;
    r.start = start;
    r.pos = start + headerLen;
    r.end = end;
    r.ranges = (this.flags & RANGES) !== 0;
    const first = buf[start];
    const type = first >> 4;
    // A PUBLISH (nearly every packet) is decoded on its own path, the rest in decodeControl:
    // JavaScriptCore compiles this function while one kind of packet flows (the CONNECTs of
    // a wave of clients, then their PUBLISHes) and throws the code away when code it never
    // saw run is reached, so the kinds share as little code as they can.
    if (type === 3) {
      const level = this.flags >> VERSION_SHIFT;
      const packet = decodePublish(r, first & 0x0f, (level || 4) as ProtocolVersion);
      r.buf = EMPTY; // don't keep the chunk alive
      onPacket(packet, 3);
    } else decodeControl(this, r, first, onPacket);
  }
}

/** Any packet but PUBLISH; a CONNECT sets the decoder's version. */
function decodeControl(
  d: PacketDecoder,
  r: Reader,
  first: number,
  onPacket: (packet: Packet, type: number) => void,
): void {
  const packet = decodePacket(r, first, d.version);
  r.buf = EMPTY; // don't keep the chunk alive
  // The type from the header byte, and the CONNECT's field read in a function of its own: a
  // read of `packet.protocolVersion` here would be checked for the CONNECT's class where
  // `packet` is set (JavaScriptCore hoists the check), so every later PINGREQ would fail it.
  if (first >> 4 === 1) learnVersion(d, packet as ConnectPacket);
  onPacket(packet, first >> 4);
}

function learnVersion(d: PacketDecoder, connect: ConnectPacket): void {
  if (d.version !== undefined) return;
  const v = connect.protocolVersion;
  if (v === 3 || v === 4 || v === 5) d.version = v;
}
