/**
 * Message ids that sort, as strings, in creation order: a fixed-width base-36
 * count of (milliseconds × 1024 + sequence), strictly increasing within a
 * process and, after `observe`-ing the loaded ids, across restarts (even when
 * the clock steps back); then `.` and the broker id (`nodeSuffix`), since the
 * nodes of a cluster store messages in one Redis under these ids: without it
 * two nodes' messages of the same millisecond took the same key, one replacing
 * or deleting the other.
 */
export class MessageIds {
  private last = 0;
  /** The rendered high digits (all but the last four) and the value they stand for. */
  private high = -1;
  private highText = "";

  constructor(
    private readonly now: () => number = Date.now,
    /** Appended to every id: `nodeSuffix(brokerId)`, "" for none. */
    private readonly suffix = "",
  ) {}

  next(): string {
    const candidate = this.now() * 1024;
    const n = this.last = candidate > this.last ? candidate : this.last + 1;
    // One id per delivery: the high digits change every ~1.6 s, so render only the low four
    // (two table lookups) instead of toString(36) + padStart each time.
    const high = Math.floor(n / LOW);
    if (high !== this.high) {
      this.high = high;
      this.highText = high.toString(36).padStart(WIDTH - 4, "0");
    }
    const low = n - high * LOW;
    const hi2 = Math.floor(low / 1296);
    return this.highText + PAIRS[hi2] + PAIRS[low - hi2 * 1296] + this.suffix;
  }

  /** Never hand out an id at or below `id` (one loaded from a store, any node's). */
  observe(id: string): void {
    const n = parseInt(id.slice(0, WIDTH), 36);
    if (Number.isSafeInteger(n) && n > this.last) this.last = n;
  }
}

/**
 * The id suffix of broker `brokerId`: `.` (no base-36 digit, so the count parses alone and ids
 * of one millisecond still sort by count) and the id, any character but letters, digits, `_`
 * and `-` written as `%hh` (ids are parts of Redis keys).
 */
export function nodeSuffix(brokerId: string | number): string {
  return "." + String(brokerId).replace(/[^A-Za-z0-9_-]/g, (c) => "%" + hex(c));
}

const hex = (c: string) =>
  [...new TextEncoder().encode(c)].map((b) => b.toString(16).padStart(2, "0")).join("%");

/** 36^11 > 2^53: every safe integer fits. */
const WIDTH = 11;
const LOW = 36 ** 4;
/** "00" … "zz": the base-36 digit pairs. */
const PAIRS = Array.from({ length: 1296 }, (_, i) => i.toString(36).padStart(2, "0"));

/** Sorts stored deliveries in message-id (creation) order. */
export function byMessageId(a: { messageId: string }, b: { messageId: string }): number {
  return a.messageId < b.messageId ? -1 : a.messageId > b.messageId ? 1 : 0;
}
