import type { Packet } from "../mqtt/packet.ts";

/**
 * The packets decoded from the chunk a connection is handling. Decoding and
 * handling one chunk is synchronous, so one list serves every connection.
 * It is used by count and never truncated: setting an array's length to 0
 * drops its backing store, and the next push allocates a new one (measured:
 * ~300 B per message on the QoS 1 path).
 */
/**
 * Made with room for a chunk's worth of packets: a store past an array's end, first met once a
 * chunk holds more packets than any before (CONNECTs come one per chunk, PUBLISHes dozens),
 * would make JavaScriptCore throw away the code it compiled for collect().
 */
const ROOM = 64;
const list: (Packet | undefined)[] = new Array(ROOM).fill(undefined);
/** Each packet's type, from its fixed header (see typeAt). */
const types: number[] = new Array(ROOM).fill(0);
let count = 0;

export function startScratch(): void {
  count = 0;
}

/** The decoder's callback. */
export function collect(p: Packet, type: number): void {
  types[count] = type;
  list[count++] = p;
}

export function scratchCount(): number {
  return count;
}

/**
 * The type of the packet at `i`: dispatching on it, not on `packet.type`, keeps a read of
 * every packet class (PINGREQ, CONNECT) off the PUBLISH path, where JavaScriptCore's code,
 * compiled while only PUBLISHes came, would be thrown away at the first other one.
 */
export function typeAt(i: number): number {
  return types[i];
}

/** The packet at `i`, cleared from the list: no packet (nor its chunk) is held past the call. */
export function takeAt(i: number): Packet {
  const p = list[i]!;
  list[i] = undefined;
  return p;
}

/** Packets from..to, moved out of the list (for handling after an await). */
export function takeRange(from: number, to: number): Packet[] {
  const rest: Packet[] = [];
  for (let i = from; i < to; i++) rest.push(takeAt(i));
  return rest;
}

/** Clear from..to (also after a decode error, which leaves the packets before it collected). */
export function clearRange(from: number, to: number): void {
  for (let i = from; i < to; i++) list[i] = undefined;
}
