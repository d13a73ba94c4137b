/**
 * Packet encoding for MQTT 3.1, 3.1.1 and 5.0. Each packet body is described
 * once (writeBody) and run through a Sizer then a Writer, so the output is
 * allocated once at its exact size. PUBLISH has its own direct path.
 * The input is assumed valid; 5.0-only fields are dropped for levels 3/4.
 */
import type { Packet, ProtocolVersion, PublishPacket } from "./packet.ts";
import { hasProperties, propertiesLength, writeProperties } from "./properties.ts";
import type { Properties } from "./packet.ts";
import { utf8Length, writeUtf8 } from "./utf8.ts";
import { type Sink, Sizer, vbiLength, Writer } from "./writer.ts";

// Encoding is synchronous and never re-entered, so one of each is enough.
const sizer = new Sizer();
const writer = new Writer();

export function encode(packet: Packet, version: ProtocolVersion): Uint8Array {
  const out = new Uint8Array(encodedLength(packet, version));
  encodeInto(packet, version, out, 0);
  return out;
}

/**
 * Encode into `buf` at `offset` (the caller made room for encodedLength bytes)
 * and return the offset after the packet. Lets a connection batch packets in
 * one output buffer without allocating per packet.
 */
export function encodeInto(
  packet: Packet,
  version: ProtocolVersion,
  buf: Uint8Array,
  offset: number,
): number {
  if (packet.type === 3) return encodePublishInto(packet, version, buf, offset);
  const rem = bodyLength(packet, version);
  writer.buf = buf;
  writer.pos = offset;
  writer.u8(firstByte(packet));
  writer.vbi(rem);
  writeBody(writer, packet, version);
  const end = writer.pos;
  writer.buf = EMPTY;
  return end;
}

/** Length in bytes encode() would produce (to respect a client's Maximum Packet Size). */
export function encodedLength(packet: Packet, version: ProtocolVersion): number {
  if (packet.type === 3) {
    const p = packet;
    return publishSize(version, utf8Length(p.topic), p.payload.length, p.qos, p.properties);
  }
  const rem = bodyLength(packet, version);
  return 1 + vbiLength(rem) + rem;
}

const EMPTY = new Uint8Array(0);

function bodyLength(packet: Packet, version: ProtocolVersion): number {
  sizer.n = 0;
  writeBody(sizer, packet, version);
  return sizer.n;
}

function encodePublishInto(
  p: PublishPacket,
  v: ProtocolVersion,
  out: Uint8Array,
  offset: number,
): number {
  const topicLength = utf8Length(p.topic);
  return writePublish(
    out,
    offset,
    v,
    p.topic,
    topicLength,
    p.payload,
    0,
    p.payload.length,
    p.qos,
    p.retain,
    p.dup,
    p.packetId ?? 0,
    p.properties,
  );
}

/**
 * Size in bytes of a PUBLISH with these fields (`topicLength` from utf8Length):
 * lets the delivery path check a client's Maximum Packet Size and encode
 * without building a packet object per recipient.
 */
export function publishSize(
  v: ProtocolVersion,
  topicLength: number,
  payloadLength: number,
  qos: number,
  properties: Properties | undefined,
): number {
  let rem = 2 + topicLength + payloadLength + (qos > 0 ? 2 : 0);
  if (v === 5) {
    const pl = propertiesLength(properties);
    rem += vbiLength(pl) + pl;
  }
  return 1 + vbiLength(rem) + rem;
}

/**
 * Write a PUBLISH from its fields at `offset` (room for publishSize bytes);
 * returns the end. The payload is source[payloadStart, +payloadLength).
 */
export function writePublish(
  out: Uint8Array,
  offset: number,
  v: ProtocolVersion,
  topic: string,
  topicLength: number,
  source: Uint8Array,
  payloadStart: number,
  payloadLength: number,
  qos: number,
  retain: boolean,
  dup: boolean,
  packetId: number,
  properties: Properties | undefined,
): number {
  let rem = 2 + topicLength + payloadLength + (qos > 0 ? 2 : 0);
  let propsLen = 0;
  if (v === 5) {
    propsLen = propertiesLength(properties);
    rem += vbiLength(propsLen) + propsLen;
  }
  const w = writer;
  w.buf = out;
  w.pos = offset;
  w.u8(0x30 | (dup ? 0x08 : 0) | (qos << 1) | (retain ? 0x01 : 0));
  w.vbi(rem);
  let pos = w.pos;
  out[pos] = topicLength >> 8;
  out[pos + 1] = topicLength;
  pos += 2;
  writeUtf8(out, pos, topic);
  pos += topicLength;
  if (qos > 0) {
    out[pos] = packetId >> 8;
    out[pos + 1] = packetId;
    pos += 2;
  }
  if (v === 5) {
    w.pos = pos;
    w.vbi(propsLen);
    writeProperties(w, properties);
    pos = w.pos;
  }
  copyRange(out, pos, source, payloadStart, payloadLength);
  w.buf = EMPTY;
  return pos + payloadLength;
}

/** Below this a byte loop beats making a view to copy from (see publish_range.ts). */
const COPY_BY_LOOP = 512;

function copyRange(out: Uint8Array, pos: number, src: Uint8Array, start: number, n: number): void {
  if (start === 0 && n === src.length) out.set(src, pos);
  else if (n <= COPY_BY_LOOP) { for (let i = 0; i < n; i++) out[pos + i] = src[start + i]; }
  else out.set(src.subarray(start, start + n), pos);
}

/** Size of PUBACK/PUBREC/PUBREL/PUBCOMP: a 5.0 reason code other than 0 adds a byte (3.4.2.1). */
export function ackSize(v: ProtocolVersion, reasonCode: number): number {
  return v === 5 && reasonCode !== 0 ? 5 : 4;
}

/**
 * Write PUBACK (4), PUBREC (5), PUBREL (6) or PUBCOMP (7) without a packet
 * object; the same bytes `encode` gives for one without properties.
 */
export function writeAck(
  out: Uint8Array,
  offset: number,
  v: ProtocolVersion,
  type: 4 | 5 | 6 | 7,
  packetId: number,
  reasonCode: number,
): number {
  const withCode = v === 5 && reasonCode !== 0;
  out[offset] = type === 6 ? 0x62 : type << 4; // [MQTT-3.6.1-1]
  out[offset + 1] = withCode ? 3 : 2;
  out[offset + 2] = packetId >> 8;
  out[offset + 3] = packetId;
  if (!withCode) return offset + 4;
  out[offset + 4] = reasonCode;
  return offset + 5;
}

function firstByte(p: Packet): number {
  switch (p.type) {
    case 3:
      return 0x30 | (p.dup ? 0x08 : 0) | (p.qos << 1) | (p.retain ? 0x01 : 0);
    case 6:
    case 8:
    case 10:
      return (p.type << 4) | 0x02; // [MQTT-3.6.1-1] [MQTT-3.8.1-1] [MQTT-3.10.1-1]
    default:
      return p.type << 4;
  }
}

/** Property length prefix plus the properties. */
function props(s: Sink, p: Properties | undefined): void {
  const len = propertiesLength(p);
  s.vbi(len);
  if (s instanceof Writer) writeProperties(s, p);
  else (s as Sizer).n += len;
}

function writeBody(s: Sink, p: Packet, v: ProtocolVersion): void {
  switch (p.type) {
    case 1: {
      s.str(p.protocolName);
      s.u8(p.protocolVersion);
      const will = p.will;
      let flags = p.clean ? 0x02 : 0;
      if (will) flags |= 0x04 | (will.qos << 3) | (will.retain ? 0x20 : 0);
      if (p.password !== undefined) flags |= 0x40;
      if (p.username !== undefined) flags |= 0x80;
      s.u8(flags);
      s.u16(p.keepAlive);
      if (v === 5) props(s, p.properties);
      s.str(p.clientId);
      if (will) {
        if (v === 5) props(s, will.properties);
        s.str(will.topic);
        s.bin(will.payload);
      }
      if (p.username !== undefined) s.str(p.username);
      if (p.password !== undefined) s.bin(p.password);
      return;
    }
    case 2:
      s.u8(p.sessionPresent ? 1 : 0);
      s.u8(p.reasonCode);
      if (v === 5) props(s, p.properties);
      return;
    case 3:
      s.str(p.topic);
      if (p.qos > 0) s.u16(p.packetId!);
      if (v === 5) props(s, p.properties);
      s.raw(p.payload);
      return;
    case 4:
    case 5:
    case 6:
    case 7:
      s.u16(p.packetId);
      if (v === 5) reasonAndProps(s, p.reasonCode ?? 0, p.properties);
      return;
    case 8:
      s.u16(p.packetId);
      if (v === 5) props(s, p.properties);
      for (const sub of p.subscriptions) {
        s.str(sub.topicFilter);
        let opts = sub.qos;
        if (v === 5) {
          if (sub.noLocal) opts |= 0x04;
          if (sub.retainAsPublished) opts |= 0x08;
          opts |= (sub.retainHandling ?? 0) << 4;
        }
        s.u8(opts);
      }
      return;
    case 9:
      s.u16(p.packetId);
      if (v === 5) {
        props(s, p.properties);
        for (const c of p.reasonCodes) s.u8(c);
      } else {
        // 3.x knows only 0, 1, 2 and 0x80 (failure).
        for (const c of p.reasonCodes) s.u8(c >= 0x80 ? 0x80 : c);
      }
      return;
    case 10:
      s.u16(p.packetId);
      if (v === 5) props(s, p.properties);
      for (const f of p.topicFilters) s.str(f);
      return;
    case 11:
      s.u16(p.packetId);
      if (v === 5) {
        props(s, p.properties);
        for (const c of p.reasonCodes ?? []) s.u8(c);
      }
      return;
    case 12:
    case 13:
      return;
    case 14:
    case 15:
      if (v === 5) reasonAndProps(s, p.reasonCode ?? 0, p.properties);
      return;
  }
}

/** 5.0 acks, DISCONNECT and AUTH: omit what the receiver may default (3.4.2.1, 3.14.2.1). */
function reasonAndProps(s: Sink, code: number, p: Properties | undefined): void {
  const withProps = hasProperties(p);
  if (code === 0 && !withProps) return;
  s.u8(code);
  if (withProps) props(s, p);
}
