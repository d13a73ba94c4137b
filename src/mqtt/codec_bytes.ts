/** Test fixture helpers: spell packets as annotated bytes (not used by the broker). */
import type { Packet, ProtocolVersion } from "./packet.ts";

type Bytes = number | number[];

const te = new TextEncoder();

export function flat(parts: Bytes[]): number[] {
  return parts.flatMap((p) => (typeof p === "number" ? [p] : p));
}
export function u16(n: number): number[] {
  return [n >> 8, n & 0xff];
}
export function u32(n: number): number[] {
  return [n >>> 24, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff];
}
export function vbi(n: number): number[] {
  const out: number[] = [];
  do {
    let b = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) b |= 0x80;
    out.push(b);
  } while (n > 0);
  return out;
}
/** Raw UTF-8 bytes, no length prefix. */
export function raw(s: string): number[] {
  return [...te.encode(s)];
}
/** Length-prefixed UTF-8 string. */
export function str(s: string): number[] {
  const b = raw(s);
  return [...u16(b.length), ...b];
}
/** Length-prefixed binary data. */
export function bin(b: number[]): number[] {
  return [...u16(b.length), ...b];
}
/** One property: identifier then value. */
export function prop(id: number, ...value: Bytes[]): number[] {
  return [id, ...flat(value)];
}
/** A property block: length prefix then properties. */
export function props(...parts: Bytes[]): number[] {
  const body = flat(parts);
  return [...vbi(body.length), ...body];
}
/** A whole packet: first byte, computed remaining length, body. */
export function pkt(first: number, ...body: Bytes[]): Uint8Array {
  const b = flat(body);
  return new Uint8Array([first, ...vbi(b.length), ...b]);
}
export function u8a(s: string | number[]): Uint8Array {
  return typeof s === "string" ? te.encode(s) : new Uint8Array(s);
}

export interface Case {
  name: string;
  /** Levels the bytes mean this packet at. */
  versions: ProtocolVersion[];
  bytes: Uint8Array;
  packet: Packet;
}
