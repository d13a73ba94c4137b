/**
 * A session's queued deliveries, oldest first: one array and the index of its
 * oldest live entry.
 *
 * Why not a plain array: each PUBACK frees one in-flight slot and takes the
 * oldest queued delivery, and `splice(0, 1)` moved every other entry, each
 * move with V8's write barrier (an old array holding young messages). With a
 * full queue (max-queued-messages, 1000) under S2 QoS 1, 100 publishers into
 * one subscriber, that was ~35% of the Deno broker's CPU (`--prof`:
 * ArrayPrototypeSplice and RecordWriteSaveFP; bench/notes/deno_s2_qos1.md).
 * Here taking from the front clears the slots taken, and the array is
 * compacted in place once the taken part is at least half of it (each entry
 * moves at most once on average). The array is never replaced (inflight.ts
 * says why a reassigned field costs the hot paths on V8).
 */
export class DeliveryQueue<T> implements ReadonlyDeliveryQueue<T> {
  private readonly items: (T | undefined)[] = [];
  /** Entries before this one were taken (their slots cleared). */
  private head = 0;

  get length(): number {
    return this.items.length - this.head;
  }

  /** The `i`-th oldest entry (0: the oldest), or undefined past the end. */
  get(i: number): T | undefined {
    return i < 0 ? undefined : this.items[this.head + i];
  }

  push(item: T): void {
    this.items.push(item);
  }

  /** The `n` oldest entries are gone. */
  dropFront(n: number): void {
    if (!(n > 0)) return; // a negative count would move the head back onto taken slots
    const items = this.items;
    const end = Math.min(this.head + n, items.length);
    for (let i = this.head; i < end; i++) items[i] = undefined;
    this.head = end;
    if (end === items.length) return this.clear();
    if (end < COMPACT_AT || end * 2 < items.length) return;
    const live = items.length - end;
    for (let i = 0; i < live; i++) items[i] = items[end + i];
    items.length = live;
    this.head = 0;
  }

  clear(): void {
    this.items.length = 0;
    this.head = 0;
  }

  /** Oldest first. Not to be changed during the walk. */
  *[Symbol.iterator](): IterableIterator<T> {
    const items = this.items;
    for (let i = this.head; i < items.length; i++) yield items[i]!;
  }
}

/** What a session's readers see. */
export interface ReadonlyDeliveryQueue<T> extends Iterable<T> {
  readonly length: number;
  get(i: number): T | undefined;
}

/** Taken entries are kept (cleared) until there are this many: a short queue never moves. */
const COMPACT_AT = 32;
