/**
 * Output buffers shared by all connections. A connection takes one when it
 * has something to send and gives it back once the transport has written it,
 * so an idle connection holds no output memory and a busy broker allocates
 * almost nothing per packet.
 *
 * The pool grows to as many buffers as connections had output in one tick (a
 * burst of CONNACKs: one per connection) and shrinks again: trimPool(), run
 * by the broker's sweep, drops the buffers no connection took during the last
 * period, down to POOL_KEEP. Without it 10,000 connections arriving at once
 * left ~100 buffers (1.6 MiB, 0.16 KB per connection of S5) pooled for good.
 */
export const POOL_BUFFER_SIZE = 16 * 1024;
const POOL_MAX = 256; // 4 MiB kept at most
/** Buffers kept however long they go unused. */
export const POOL_KEEP = 8;

const free: Uint8Array[] = [];
/** The fewest buffers the pool held since the last trim: that many went unused. */
let lowWater = 0;

export const EMPTY = new Uint8Array(0);

/** A buffer of at least `n` bytes. */
export function takeBuffer(n: number): Uint8Array {
  if (n > POOL_BUFFER_SIZE) return new Uint8Array(Math.max(n, POOL_BUFFER_SIZE * 2));
  const b = free.pop();
  if (b === undefined) {
    lowWater = 0;
    return new Uint8Array(POOL_BUFFER_SIZE);
  }
  if (free.length < lowWater) lowWater = free.length;
  return b;
}

/** Return a buffer nobody reads any more. Odd sizes are left to the GC. */
export function giveBuffer(b: Uint8Array): void {
  if (b.length === POOL_BUFFER_SIZE && free.length < POOL_MAX) free.push(b);
}

/** Drop the buffers nobody took since the last call (keeping POOL_KEEP); returns how many. */
export function trimPool(): number {
  const drop = Math.min(lowWater, free.length - POOL_KEEP);
  if (drop > 0) free.length -= drop;
  lowWater = free.length;
  return Math.max(0, drop);
}

/** Buffers in the pool now (for tests). */
export const pooledBuffers = (): number => free.length;
