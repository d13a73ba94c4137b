/**
 * Decoding PUBLISH topic names through a small table of recent ones. Clients
 * publish to the same topics over and over: a repeated topic costs a hash and
 * a compare, allocates nothing, is not checked again, and comes back as the
 * same string, whose hash the routing cache has already computed.
 */
import { decodeUtf8 } from "./utf8.ts";

/**
 * Sets in the table (a power of two), each holding the last WAYS topics that
 * hashed to it. 1,000 publishers' topics (`make bench` S1) in 1,024 single
 * slots left 632 of them sharing a slot with another, so most of their
 * PUBLISHes decoded and allocated their name again; with two ways 304, with
 * four 20 (FNV-1a of "bench/0".."bench/999").
 */
const SETS = 1024;
const WAYS = 4;
/** Longer topic names are decoded every time rather than kept. */
const LONGEST = 128;

/**
 * Set s is slots WAYS * s (the newest) to WAYS * s + WAYS - 1 (the oldest).
 * An empty slot holds NONE (a name is never empty here), not undefined: the
 * table then only ever holds Uint8Arrays, so JavaScriptCore's optimized code
 * for the lookup, compiled while the table was filling, does not bail out
 * and get compiled again once it is full.
 */
const NONE = new Uint8Array(0);
const slotBytes: Uint8Array[] = new Array(WAYS * SETS).fill(NONE);
const slotNames: string[] = new Array(WAYS * SETS).fill("");

/**
 * A topic name's string: undefined when the bytes are not valid MQTT UTF-8
 * (as decodeUtf8), null when the name holds a wildcard character, which a
 * topic name may not [MQTT-3.3.2-2]. Only valid names are remembered.
 */
export function decodeTopicName(
  buf: Uint8Array,
  start: number,
  end: number,
): string | undefined | null {
  const len = end - start;
  if (len === 0 || len > LONGEST) return checked(decodeUtf8(buf, start, end));
  let h = 0x811c9dc5 ^ len; // FNV-1a
  for (let i = start; i < end; i++) h = Math.imul(h ^ buf[i], 0x01000193);
  const first = ((h >>> 0) & (SETS - 1)) * WAYS;
  for (let slot = first; slot < first + WAYS; slot++) {
    const known = slotBytes[slot];
    if (known === NONE) break;
    if (known.length === len && sameBytes(known, buf, start)) return slotNames[slot];
  }
  return remember(buf, start, end, first);
}

/** A name not in the table: decode it and, when valid, make it the newest of its set. */
function remember(
  buf: Uint8Array,
  start: number,
  end: number,
  first: number,
): string | undefined | null {
  const name = checked(decodeUtf8(buf, start, end));
  if (name === undefined || name === null) return name; // never remembered
  for (let slot = first + WAYS - 1; slot > first; slot--) {
    slotBytes[slot] = slotBytes[slot - 1];
    slotNames[slot] = slotNames[slot - 1];
  }
  slotBytes[first] = buf.slice(start, end);
  slotNames[first] = name;
  return name;
}

function checked(name: string | undefined): string | undefined | null {
  if (name === undefined) return undefined;
  return name.includes("+") || name.includes("#") ? null : name;
}

function sameBytes(a: Uint8Array, buf: Uint8Array, start: number): boolean {
  for (let i = 0; i < a.length; i++) if (a[i] !== buf[start + i]) return false;
  return true;
}
