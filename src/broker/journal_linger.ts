/**
 * How long the session journal's open batch waits before it is written while it
 * holds deliveries not yet acknowledged: a delivery sent and acknowledged before
 * its batch is written leaves the batch, so it is never stored and then deleted
 * (bench/README.md, "bimodal").
 */
import type { SessionBatchBuilder } from "../store/batch.ts";

/**
 * Turns a batch holding unacknowledged sends waits for them (measured on S4
 * persistent QoS 1: 1 turn left ~15% of deliveries stored and deleted; 2
 * turns gave 8-20% more messages per CPU-second on Redis and SQLite). Until
 * the sends it held when it began waiting are acknowledged, a turn that brings
 * some of their acknowledgements, or nothing at all, does not count: the
 * subscribers are still reading what was sent. Counting every turn stored a
 * third of all deliveries once publishers moved in step (bench/README.md,
 * "bimodal"). Once they are, the sends that came meanwhile are waited for
 * the same way, and that counts as a turn: a steady flow, whose every turn
 * brings acknowledgements and new sends, would otherwise keep each batch
 * waiting to the limit.
 */
const LINGER_TURNS = 2;
/**
 * A batch stops waiting once no acknowledgement of its sends came for this
 * long (a subscriber that reads slowly or not at all), and in any case after
 * `maxMs`. Time, not turns: while the broker itself is busy a turn can
 * take longer than this, and the acknowledgements it brings are progress.
 */
export interface LingerDeadlines {
  quietMs: number;
  maxMs: number;
}
export const LINGER_DEADLINES: LingerDeadlines = { quietMs: 10, maxMs: 100 };

/** One journal's linger state: asked once per turn in which its open batch could go. */
export class BatchLinger {
  /** Turns of input without acknowledgements the open batch has waited for its sends. */
  private lingered = 0;
  /** When the open batch started waiting for acknowledgements (undefined: it has not). */
  private since: number | undefined;
  /** When it started waiting or last saw one of them, whichever is later. */
  private lastAcked = 0;
  /** The open batch's sends when it started waiting (or last caught up): those it waits for. */
  private waitFor = 0;
  /** The batch's cancelled sends and the journal's changes at the last turn it waited. */
  private seenCancelled = 0;
  private seenChanges = 0;

  constructor(private readonly deadlines: LingerDeadlines = LINGER_DEADLINES) {}

  /** The batch was written (or given up on): the next one starts afresh. */
  reset(): void {
    this.lingered = 0;
    this.since = undefined;
  }

  /** Whether `batch` should wait one more turn; `changes` counts the journal's input so far. */
  waits(batch: SessionBatchBuilder, changes: number): boolean {
    if (!batch.sending) return false;
    const now = performance.now();
    if (this.since === undefined) {
      this.since = this.lastAcked = now;
      this.waitFor = batch.sends;
    } else if (now - this.since >= this.deadlines.maxMs) return false;
    else if (!batch.pendingBefore(this.waitFor)) {
      // Those are all acknowledged: wait for the later ones, a turn's worth of patience less.
      if (++this.lingered >= LINGER_TURNS) return false;
      this.waitFor = batch.sends;
      this.lastAcked = now;
    } else if (batch.cancelled !== this.seenCancelled) this.lastAcked = now;
    else if (changes !== this.seenChanges) {
      if (++this.lingered >= LINGER_TURNS) return false; // input, but none of them acknowledged
    } else if (now - this.lastAcked >= this.deadlines.quietMs) return false;
    this.seenChanges = changes;
    this.seenCancelled = batch.cancelled;
    return true;
  }
}
