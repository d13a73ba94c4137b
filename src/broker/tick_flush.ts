/**
 * Connections with output waiting for this tick's flush: everything handled
 * in one turn goes out in one write per connection, at the end of the turn.
 */
export interface Flushable {
  flush(): void;
}

// Used by count and never truncated: setting an array's length to 0 drops
// its backing store, and the next push allocates a new one.
const dirty: (Flushable | undefined)[] = [];
let dirtyCount = 0;

/** Flush `c` at the end of this tick (the caller marks it so it is added once). */
export function flushThisTick(c: Flushable): void {
  dirty[dirtyCount++] = c;
  if (dirtyCount === 1) queueMicrotask(flushDirty);
}

function flushDirty(): void {
  // A flush may add more connections (none today), so walk by index.
  for (let i = 0; i < dirtyCount; i++) {
    const c = dirty[i]!;
    dirty[i] = undefined;
    c.flush();
  }
  dirtyCount = 0;
}
