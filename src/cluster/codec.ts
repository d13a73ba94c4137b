/**
 * Bus frames as bytes: one frame carries every message one event-loop turn
 * sent to one destination (a node, or all of them), so a turn costs one
 * PUBLISH (one Kafka record) per destination instead of one per message.
 * docs/architecture.md (The cluster, "Bus frames") has the layout:
 *
 *   frame  = 0xB1 (magic and version) | str sender | record*
 *   record = u32 length of what follows | u8 kind | body
 *   ack    = u8 flags (bit 0 ok, bit 1 counts) | u32 n | f64 id * n | (u32 count * n)
 *   str    = u32 byte length | UTF-8
 *
 * A publish's header is binary (the profile of a cross-node S4 run showed
 * JSON.stringify of the header at 4% of the sender's CPU); the payload is the
 * record's tail, raw. Acks are binary too; the rare kinds (kick, released,
 * retained, handed, adopted) carry a JSON header and the payload as before.
 */
import { Buffer } from "node:buffer";
import { decodeMessage, encodeMessageFields, fromJson, toJson } from "../store/codec.ts";
import { RangePublish } from "../mqtt/publish_range.ts";
import { decodeTopicName } from "../mqtt/topic_names.ts";
import type { MessageData } from "../store/types.ts";
import type { BusMessage, NodeId } from "./types.ts";

const MAGIC = 0xb1;
/** RESENT: a publish with the `resendOf` id first (a kind of its own: the flags byte is full). */
const PUBLISH = 1, ACK = 2, OTHER = 3, RESENT = 4;
// publish flags: bits 0-1 are the QoS
const RETAIN = 4, EXPIRES = 8, FROM = 16, PROPS = 32, ACK_ID = 64, SHARES = 128;
// ack flags: bit 0 is ok; ACK_COUNTS: a u32 count per id follows the ids
const ACK_COUNTS = 2;

const copy = Buffer.prototype.copy;

/** Recent publishers' client ids (clientId()): slot by hash, the newest wins. */
const IDS = 1024;
const idBytes: (Uint8Array | undefined)[] = new Array(IDS).fill(undefined);
const idNames: string[] = new Array(IDS).fill("");

const enc = new TextEncoder();
const dec = new TextDecoder();

/** A growing buffer one frame is written into. */
export class FrameWriter {
  private buf: Uint8Array;
  private view: DataView;
  private pos = 0;

  /** `spare`: a buffer of an earlier frame nobody holds any more, written again if large enough. */
  constructor(from: NodeId, size = 4_096, spare?: Uint8Array) {
    this.buf = spare && spare.length >= size ? spare : alloc(size);
    this.view = new DataView(this.buf.buffer);
    this.u8(MAGIC);
    this.str(from);
  }

  get length(): number {
    return this.pos;
  }

  /** The frame so far (the writer is not used after this). */
  bytes(): Uint8Array {
    return this.buf.subarray(0, this.pos);
  }

  /** The whole buffer written into (for a later frame, once the sink copied this one). */
  get buffer(): Uint8Array {
    return this.buf;
  }

  /** Append one message as a record. */
  add(msg: BusMessage): void {
    const start = this.pos;
    this.u32(0); // its length, set below
    if (msg.kind === "publish") this.publish(msg);
    else if (msg.kind === "ack") {
      const counts = msg.counts;
      this.u8(ACK);
      this.u8((msg.ok ? 1 : 0) | (counts ? ACK_COUNTS : 0));
      this.u32(msg.ids.length);
      this.room((counts ? 12 : 8) * msg.ids.length);
      for (const id of msg.ids) this.f64(id);
      if (counts) { for (const n of counts) this.u32(n); }
    } else this.other(msg);
    this.view.setUint32(start, this.pos - start - 4);
  }

  private publish(msg: Extract<BusMessage, { kind: "publish" }>): void {
    const m = msg.message;
    let flags = m.qos;
    if (m.retain) flags |= RETAIN;
    if (m.expiresAt !== undefined) flags |= EXPIRES;
    if (m.from !== undefined) flags |= FROM;
    if (m.properties !== undefined) flags |= PROPS;
    if (msg.ack !== undefined) flags |= ACK_ID;
    if (msg.shares !== undefined) flags |= SHARES;
    if (msg.resendOf !== undefined) {
      this.u8(RESENT);
      this.f64(msg.resendOf);
    } else this.u8(PUBLISH);
    this.u8(flags);
    this.str(m.topic);
    if (m.expiresAt !== undefined) this.f64(m.expiresAt);
    if (m.from !== undefined) this.str(m.from);
    if (m.properties !== undefined) this.str(toJson(m.properties));
    if (msg.ack !== undefined) this.f64(msg.ack);
    if (msg.shares !== undefined) {
      this.u32(msg.shares.length);
      for (const s of msg.shares) this.str(s);
    }
    if (m instanceof RangePublish) this.range(m.source, m.sourceStart, m.payloadLength);
    else this.raw(m.payload);
  }

  /** kick, released, retained, handed, adopted: rare, a JSON header (as the first codec had) and the payload. */
  private other(msg: Exclude<BusMessage, { kind: "publish" | "ack" }>): void {
    this.u8(OTHER);
    let h: Record<string, unknown>;
    let payload: Uint8Array | undefined;
    if (msg.kind === "released") h = { k: msg.kind, c: msg.clientId, e: msg.epoch, o: msg.ok };
    else if (msg.kind === "kick") {
      h = { k: msg.kind, c: msg.clientId, e: msg.epoch, u: msg.username };
    } else if (msg.kind === "adopted") h = { k: msg.kind, c: msg.clientId, e: msg.epoch };
    else if (msg.kind === "sync" || msg.kind === "synced") h = { k: msg.kind, i: msg.id };
    else if (msg.kind === "share") {
      h = { k: msg.kind, m: encodeMessageFields(msg.message), g: msg.share, p: msg.passedOn };
      payload = msg.message.payload;
    } else if (msg.kind === "handed") {
      h = {
        k: msg.kind,
        c: msg.clientId,
        m: encodeMessageFields(msg.message),
        g: msg.share,
        o: msg.origin,
        s: msg.stored,
        a: msg.ack,
      };
      payload = msg.message.payload;
    } else {
      h = { k: msg.kind, t: msg.topic };
      if (msg.version !== undefined) h.v = msg.version;
      if (msg.message) {
        h.m = encodeMessageFields(msg.message);
        payload = msg.message.payload;
      }
    }
    this.str(JSON.stringify(h));
    if (payload) this.raw(payload);
  }

  private room(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    const bigger = alloc(Math.max(this.buf.length * 2, this.pos + n));
    bigger.set(this.buf.subarray(0, this.pos));
    this.buf = bigger;
    this.view = new DataView(bigger.buffer);
  }

  private u8(n: number): void {
    this.room(1);
    this.buf[this.pos++] = n;
  }

  private u32(n: number): void {
    this.room(4);
    this.view.setUint32(this.pos, n);
    this.pos += 4;
  }

  private f64(n: number): void {
    this.room(8);
    this.view.setFloat64(this.pos, n);
    this.pos += 8;
  }

  private str(s: string): void {
    this.room(4 + s.length * 3);
    const b = this.buf, start = this.pos + 4, n = s.length;
    // ASCII (topics, client ids, usually) byte by byte: no view, no encoder call.
    let i = 0;
    for (; i < n; i++) {
      const c = s.charCodeAt(i);
      if (c >= 0x80) break;
      b[start + i] = c;
    }
    const written = i === n ? n : enc.encodeInto(s, b.subarray(start)).written;
    this.view.setUint32(this.pos, written);
    this.pos = start + written;
  }

  /**
   * A payload still in its socket chunk (RangePublish): copied from there by the native
   * Buffer copy, without the view `payload` makes (on JavaScriptCore the first view into a
   * fresh chunk copies the chunk; ~4% of the sending node's CPU in a cross-node S4 profile).
   * 256 bytes: 18 ns on Bun (a byte loop 232 ns), 81 ns on Deno (187 ns).
   */
  private range(src: Uint8Array, start: number, n: number): void {
    this.room(n);
    copy.call(src, this.buf, this.pos, start, start + n);
    this.pos += n;
  }

  private raw(b: Uint8Array): void {
    this.room(b.length);
    this.buf.set(b, this.pos);
    this.pos += b.length;
  }
}

/** One message in a frame of its own (tests, tools). */
export function encodeBusMessage(from: NodeId, msg: BusMessage): Uint8Array {
  const w = new FrameWriter(from, 256 + (msg.kind === "publish" ? msg.message.payload.length : 0));
  w.add(msg);
  return w.bytes();
}

/** Without zero-filling: every byte handed out is written first. */
const alloc = (n: number): Uint8Array => {
  const b = Buffer.allocUnsafeSlow(n);
  return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
};

/** Reads one frame. */
class FrameReader {
  private readonly view: DataView;
  /** A plain Uint8Array over the frame: its `slice` copies (a Buffer's is a view). */
  readonly b: Uint8Array;
  pos = 0;
  constructor(frame: Uint8Array) {
    this.b = new Uint8Array(frame.buffer, frame.byteOffset, frame.byteLength);
    this.view = new DataView(frame.buffer, frame.byteOffset, frame.byteLength);
  }
  u8(): number {
    if (this.pos >= this.b.length) throw new RangeError("short frame");
    return this.b[this.pos++];
  }
  u32(): number {
    const n = this.view.getUint32(this.pos);
    this.pos += 4;
    return n;
  }
  f64(): number {
    const n = this.view.getFloat64(this.pos);
    this.pos += 8;
    return n;
  }
  str(): string {
    const n = this.u32(), b = this.b, start = this.pos, end = start + n;
    if (end > b.length) throw new RangeError("short frame");
    this.pos = end;
    if (n <= 64) {
      // short ASCII in one flat string, without a decoder call (`+=` per character built a
      // rope: ~10% of the receiving node's CPU in a cross-node S4 profile)
      let i = start;
      while (i < end && b[i] < 0x80) i++;
      const part = b.subarray(start, end);
      if (i === end) return String.fromCharCode.apply(null, part as unknown as number[]);
      return dec.decode(part);
    }
    return dec.decode(b.subarray(start, end));
  }
  /**
   * A publisher's client id through a small table of recent ones: a repeated id is not
   * decoded again (a string per message was ~8% of the receiving node's CPU, cross-node S4).
   */
  clientId(): string {
    const n = this.u32(), b = this.b, start = this.pos, end = start + n;
    if (end > b.length) throw new RangeError("short frame");
    this.pos = end;
    if (n > 64) return dec.decode(b.subarray(start, end));
    let h = 0x811c9dc5 ^ n; // FNV-1a
    for (let i = start; i < end; i++) h = Math.imul(h ^ b[i], 0x01000193);
    const slot = (h >>> 0) & (IDS - 1);
    const known = idBytes[slot];
    if (known !== undefined && known.length === n) {
      let i = 0;
      while (i < n && known[i] === b[start + i]) i++;
      if (i === n) return idNames[slot];
    }
    const id = dec.decode(b.subarray(start, end));
    idBytes[slot] = b.slice(start, end);
    idNames[slot] = id;
    return id;
  }
  /**
   * A topic name through the table of recent ones (mqtt/topic_names.ts): a repeated topic is
   * the same string each time, so routing finds it in its match cache without hashing anew.
   */
  topic(): string {
    const n = this.u32(), start = this.pos, end = start + n;
    if (end > this.b.length) throw new RangeError("short frame");
    this.pos = end;
    return decodeTopicName(this.b, start, end) ?? dec.decode(this.b.subarray(start, end));
  }
  /**
   * A copy (not Buffer.slice, a view): a queued message must not keep the whole frame, or the
   * client library's pooled reply buffer, alive.
   */
  rest(end: number): Uint8Array {
    const out = this.b.slice(this.pos, end);
    this.pos = end;
    return out;
  }
}

/**
 * The sender and its messages, in the order sent; undefined for bytes that are
 * not a well-formed frame (nothing of a damaged frame is delivered).
 */
export function decodeBusFrame(
  b: Uint8Array,
): { from: NodeId; msgs: BusMessage[] } | undefined {
  try {
    const r = new FrameReader(b);
    if (r.u8() !== MAGIC) return undefined;
    const from = r.str();
    const msgs: BusMessage[] = [];
    while (r.pos < b.length) {
      const end = r.u32() + r.pos;
      if (end > b.length) return undefined;
      msgs.push(readRecord(r, end));
      if (r.pos !== end) return undefined;
    }
    return { from, msgs };
  } catch {
    return undefined;
  }
}

function readRecord(r: FrameReader, end: number): BusMessage {
  const kind = r.u8();
  if (kind === ACK) {
    const flags = r.u8();
    const ok = (flags & 1) === 1;
    const ids = new Array<number>(r.u32());
    for (let i = 0; i < ids.length; i++) ids[i] = r.f64();
    if (!(flags & ACK_COUNTS)) return { kind: "ack", ids, ok };
    const counts = new Array<number>(ids.length);
    for (let i = 0; i < ids.length; i++) counts[i] = r.u32();
    return { kind: "ack", ids, ok, counts };
  }
  if (kind === PUBLISH || kind === RESENT) {
    const resendOf = kind === RESENT ? r.f64() : undefined;
    const flags = r.u8();
    const topic = r.topic();
    const expiresAt = flags & EXPIRES ? r.f64() : undefined;
    const from = flags & FROM ? r.clientId() : undefined;
    const properties = flags & PROPS ? fromJson<MessageData["properties"]>(r.str()) : undefined;
    const ack = flags & ACK_ID ? r.f64() : undefined;
    let shares: string[] | undefined;
    if (flags & SHARES) {
      shares = new Array<string>(r.u32());
      for (let i = 0; i < shares.length; i++) shares[i] = r.str();
    }
    const m: { -readonly [K in keyof MessageData]: MessageData[K] } = {
      topic,
      payload: r.rest(end),
      qos: (flags & 3) as 0 | 1 | 2,
      retain: (flags & RETAIN) !== 0,
    };
    if (expiresAt !== undefined) m.expiresAt = expiresAt;
    if (from !== undefined) m.from = from;
    if (properties !== undefined) m.properties = properties;
    return resendOf === undefined
      ? { kind: "publish", message: m, shares, ack }
      : { kind: "publish", message: m, shares, ack, resendOf };
  }
  if (kind !== OTHER) throw new RangeError(`unknown record kind ${kind}`);
  const h = JSON.parse(r.str());
  const rest = r.rest(end);
  switch (h.k) {
    case "released":
      return { kind: "released", clientId: h.c, epoch: h.e, ok: h.o === true };
    case "kick":
      return { kind: "kick", clientId: h.c, epoch: h.e, username: h.u ?? undefined };
    case "adopted":
      return { kind: "adopted", clientId: h.c, epoch: h.e };
    case "sync":
    case "synced":
      return { kind: h.k, id: h.i };
    case "share":
      return h.p === true
        ? { kind: "share", message: decodeMessage(h.m, rest), share: h.g, passedOn: true }
        : { kind: "share", message: decodeMessage(h.m, rest), share: h.g };
    case "handed":
      return {
        kind: "handed",
        clientId: h.c,
        message: decodeMessage(h.m, rest),
        share: h.g ?? undefined,
        origin: h.o ?? undefined,
        stored: h.s ?? undefined,
        ack: h.a,
      };
    case "retained":
      return {
        kind: "retained",
        topic: h.t,
        message: h.m === undefined ? undefined : decodeMessage(h.m, rest),
        version: h.v ?? undefined,
      };
  }
  throw new RangeError(`unknown message kind ${h.k}`);
}
