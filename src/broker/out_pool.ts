/**
 * Output buffers shared by all connections. A connection takes one when it
 * has something to send and gives it back once the transport has written it,
 * so an idle connection holds no output memory and a busy broker allocates
 * almost nothing per packet.
 */
export const POOL_BUFFER_SIZE = 16 * 1024;
const POOL_MAX = 256; // 4 MiB kept at most

const free: Uint8Array[] = [];

export const EMPTY = new Uint8Array(0);

/** A buffer of at least `n` bytes. */
export function takeBuffer(n: number): Uint8Array {
  if (n <= POOL_BUFFER_SIZE) return free.pop() ?? new Uint8Array(POOL_BUFFER_SIZE);
  return new Uint8Array(Math.max(n, POOL_BUFFER_SIZE * 2));
}

/** Return a buffer nobody reads any more. Odd sizes are left to the GC. */
export function giveBuffer(b: Uint8Array): void {
  if (b.length === POOL_BUFFER_SIZE && free.length < POOL_MAX) free.push(b);
}
