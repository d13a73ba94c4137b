/**
 * Decoding PUBLISH topic names through a small table of recent ones. Clients
 * publish to the same topics over and over: a repeated topic costs a hash and
 * a compare, allocates nothing, and comes back as the same string, whose hash
 * the routing cache has already computed.
 */
import { decodeUtf8 } from "./utf8.ts";

/** Table size (a power of two); a slot holds the last topic that hashed to it. */
const SLOTS = 1024;
/** Longer topic names are decoded every time rather than kept. */
const LONGEST = 128;

const slotBytes: (Uint8Array | undefined)[] = new Array(SLOTS).fill(undefined);
const slotNames: string[] = new Array(SLOTS).fill("");

/** Like decodeUtf8 (undefined when not valid MQTT UTF-8), remembering the result. */
export function decodeTopicName(buf: Uint8Array, start: number, end: number): string | undefined {
  const len = end - start;
  if (len === 0 || len > LONGEST) return decodeUtf8(buf, start, end);
  let h = 0x811c9dc5 ^ len; // FNV-1a
  for (let i = start; i < end; i++) h = Math.imul(h ^ buf[i], 0x01000193);
  const slot = (h >>> 0) & (SLOTS - 1);
  const known = slotBytes[slot];
  if (known !== undefined && known.length === len && sameBytes(known, buf, start)) {
    return slotNames[slot];
  }
  const name = decodeUtf8(buf, start, end);
  if (name === undefined) return undefined; // invalid bytes are never remembered
  slotBytes[slot] = buf.slice(start, end);
  slotNames[slot] = name;
  return name;
}

function sameBytes(a: Uint8Array, buf: Uint8Array, start: number): boolean {
  for (let i = 0; i < a.length; i++) if (a[i] !== buf[start + i]) return false;
  return true;
}
