import type { Packet } from "../mqtt/packet.ts";

/**
 * The packets decoded from the chunk a connection is handling. Decoding and
 * handling one chunk is synchronous, so one list serves every connection.
 * It is used by count and never truncated: setting an array's length to 0
 * drops its backing store, and the next push allocates a new one (measured:
 * ~300 B per message on the QoS 1 path).
 */
const list: (Packet | undefined)[] = [];
let count = 0;

export function startScratch(): void {
  count = 0;
}

/** The decoder's callback. */
export function collect(p: Packet): void {
  list[count++] = p;
}

export function scratchCount(): number {
  return count;
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
