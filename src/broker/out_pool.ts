/**
 * Output buffers shared by all connections. A connection takes one when it
 * has something to send and gives it back once the transport has written it,
 * so an idle connection holds no output memory and a busy broker allocates
 * almost nothing per packet.
 *
 * The pool grows to as many buffers as connections had output in one tick (a
 * burst of CONNACKs: one per connection) and shrinks again: trimPool(), run
 * by the broker's sweep, drops the buffers no connection took, down to
 * POOL_KEEP. Without it 10,000 connections arriving at once left ~100 buffers
 * (1.6 MiB, 0.16 KB per connection of S5) pooled for good.
 *
 * After a period in which no buffer was taken at all (the burst is over) the
 * unused ones go at once; while output flows, only those unused for
 * TRIM_PERIODS periods in a row. Steady traffic's need varies from tick to
 * tick (S4-rate200 pools ~100 buffers), and dropping what one quieter period left
 * unused made the next busy one allocate them again: ~25 buffers a second
 * that had lived long enough in the pool to reach V8's old generation, whose
 * 16 KiB backing stores then piled up until they started a mark-compact
 * mid-load (bench/notes/deno_round9.md).
 */
export const POOL_BUFFER_SIZE = 16 * 1024;
const POOL_MAX = 256; // 4 MiB kept at most
/** Buffers kept however long they go unused. */
export const POOL_KEEP = 8;
/** While output flows, a buffer is dropped once unused for this many periods in a row. */
export const TRIM_PERIODS = 16;

const free: Uint8Array[] = [];
/** The fewest buffers the pool held since the last trim: that many went unused. */
let lowWater = 0;
/** Whether a buffer was taken since the last trim. */
let took = false;
/** lowWater of the last TRIM_PERIODS periods, less what was dropped since (a ring). */
const lows: number[] = new Array(TRIM_PERIODS).fill(0);
let period = 0;

export const EMPTY = new Uint8Array(0);

/** A buffer of at least `n` bytes. */
export function takeBuffer(n: number): Uint8Array {
  if (n > POOL_BUFFER_SIZE) return new Uint8Array(Math.max(n, POOL_BUFFER_SIZE * 2));
  took = true;
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

/**
 * Drop the buffers unused since the last call when none was taken, else those unused over
 * the last TRIM_PERIODS calls (keeping POOL_KEEP); returns how many.
 */
export function trimPool(): number {
  lows[period] = lowWater;
  period = (period + 1) % TRIM_PERIODS;
  let unused = lowWater;
  if (took) { for (const low of lows) unused = Math.min(unused, low); }
  took = false;
  const drop = Math.max(0, Math.min(unused, free.length - POOL_KEEP));
  if (drop > 0) {
    free.length -= drop;
    for (let i = 0; i < TRIM_PERIODS; i++) lows[i] = Math.max(0, lows[i] - drop);
  }
  lowWater = free.length;
  return drop;
}

/** Buffers in the pool now (for tests). */
export const pooledBuffers = (): number => free.length;
