/**
 * A session's unacknowledged outgoing deliveries by packet id, in the order
 * they were sent (resends keep that order [MQTT-4.6.0-1]).
 *
 * Why not a Map: a delivery is added and removed once per message, and both
 * V8 and JavaScriptCore rebuild a Map's table every few such pairs (measured
 * ~60 B per message on Bun), which at 10k msg/s is a good part of what the GC
 * collects. This is a ring of fixed slots that only grows: ids are looked up
 * from the oldest, which is where acknowledgements nearly always land, and a
 * full scan is bounded by the inflight window (max-inflight, default 100).
 *
 * The two arrays grow in place and are never replaced: V8 treats a field that
 * was never reassigned as a constant and compiles the hot paths (deliver,
 * PUBACK, packet ids) against it, so the first window of any session to fill
 * (a client that stalled for a moment) deoptimized all of them at once, and
 * their recompilation under load delayed every client by tens of ms on Deno
 * (bench/notes/deno.md, round eight).
 */
export class InflightWindow<T> {
  private readonly ids: number[] = new Array(INITIAL).fill(0);
  private readonly items: (T | undefined)[] = new Array(INITIAL).fill(undefined);
  /** Oldest slot in use, and one past the newest (both grow without wrapping; masked on use). */
  private head = 0;
  private tail = 0;
  private count = 0;

  get size(): number {
    return this.count;
  }

  has(id: number): boolean {
    return this.find(id) >= 0;
  }

  get(id: number): T | undefined {
    const at = this.find(id);
    return at < 0 ? undefined : this.items[at & (this.ids.length - 1)];
  }

  /** Add `id` as the newest entry, or replace its value where it is. */
  set(id: number, value: T): this {
    const at = this.find(id);
    if (at >= 0) {
      this.items[at & (this.ids.length - 1)] = value;
      return this;
    }
    if (this.tail - this.head === this.ids.length) this.repack();
    const slot = this.tail & (this.ids.length - 1);
    this.ids[slot] = id;
    this.items[slot] = value;
    this.tail++;
    this.count++;
    return this;
  }

  delete(id: number): boolean {
    const at = this.find(id);
    if (at < 0) return false;
    const mask = this.ids.length - 1;
    this.items[at & mask] = undefined;
    this.count--;
    // Skip the holes at the old end, so the common in-order case stays O(1).
    while (this.head < this.tail && this.items[this.head & mask] === undefined) this.head++;
    if (this.head === this.tail) this.head = this.tail = 0;
    else if (this.head >= REBASE) {
      // A session that never empties its window: keep the counters small integers.
      const shift = this.head - (this.head & mask);
      this.head -= shift;
      this.tail -= shift;
    }
    return true;
  }

  clear(): void {
    this.items.fill(undefined);
    this.head = this.tail = this.count = 0;
  }

  /** [id, value] oldest first; deleting during the walk is allowed. */
  *[Symbol.iterator](): IterableIterator<[number, T]> {
    for (let i = this.head; i < this.tail; i++) {
      const slot = i & (this.ids.length - 1);
      const value = this.items[slot];
      if (value !== undefined) yield [this.ids[slot], value];
    }
  }

  *values(): IterableIterator<T> {
    for (const [, value] of this) yield value;
  }

  /** The position (unmasked) of `id`, or -1. */
  private find(id: number): number {
    const mask = this.ids.length - 1;
    for (let i = this.head; i < this.tail; i++) {
      const slot = i & mask;
      if (this.ids[slot] === id && this.items[slot] !== undefined) return i;
    }
    return -1;
  }

  /** Full ring: squeeze out the holes, doubling the slots if that frees none. */
  private repack(): void {
    const live = [...this]; // oldest first, read through the old mask
    const { ids, items } = this;
    const grow = live.length === ids.length ? ids.length : 0;
    for (let i = 0; i < grow; i++) {
      ids.push(0);
      items.push(undefined);
    }
    items.fill(undefined);
    for (let n = 0; n < live.length; n++) [ids[n], items[n]] = live[n];
    this.head = 0;
    this.tail = live.length;
  }
}

/** Slots of a new window (a power of two, as every later size). */
const INITIAL = 8;
/** Past this the positions are moved back by a whole number of rings. */
const REBASE = 2 ** 30;
