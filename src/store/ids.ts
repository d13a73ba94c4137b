/**
 * Message ids that sort, as strings, in creation order: a fixed-width base-36
 * count of (milliseconds × 1024 + sequence), strictly increasing within a
 * process and, after `observe`-ing the loaded ids, across restarts (even when
 * the clock steps back).
 */
export class MessageIds {
  private last = 0;

  constructor(private readonly now: () => number = Date.now) {}

  next(): string {
    const candidate = this.now() * 1024;
    this.last = candidate > this.last ? candidate : this.last + 1;
    return this.last.toString(36).padStart(WIDTH, "0");
  }

  /** Never hand out an id at or below `id` (one loaded from a store). */
  observe(id: string): void {
    const n = parseInt(id, 36);
    if (Number.isSafeInteger(n) && n > this.last) this.last = n;
  }
}

/** 36^11 > 2^53: every safe integer fits. */
const WIDTH = 11;

/** Sorts stored deliveries in message-id (creation) order. */
export function byMessageId(a: { messageId: string }, b: { messageId: string }): number {
  return a.messageId < b.messageId ? -1 : a.messageId > b.messageId ? 1 : 0;
}
