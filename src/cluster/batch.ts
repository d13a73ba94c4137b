/**
 * What the bus sends in one event-loop turn, one frame per destination (a
 * node, or undefined: every node). Measured on a cross-node S4 run, one Redis
 * PUBLISH per message cost the sender ~24 µs of CPU per message in the client
 * library (per-command timers, listeners, tracing, socket writes): a frame
 * pays that once for every message of the turn.
 *
 * Order: a node reads its own channel and the broadcasts, so a broadcast
 * between two direct messages must not overtake them, nor they it. Pending
 * frames are therefore all direct or all broadcast: adding the other kind sends
 * what is pending first. Within a frame, messages keep the order they were added.
 */
import { setImmediate } from "node:timers";
import { FrameWriter } from "./codec.ts";
import type { BusMessage, NodeId } from "./types.ts";

/**
 * A frame this large goes out at once (a single larger message alone): well under Kafka's
 * default max.message.bytes (1 MB) and Redis's pub/sub output limits.
 */
export const MAX_FRAME_BYTES = 256 * 1024;

/**
 * Least ms between two frames: a turn that ends sooner after the last frame holds its messages
 * until then, so at a few thousand messages per second a frame carries a millisecond's worth,
 * not one turn's two or three. Each frame wakes Redis, the receiving node, and (for its QoS 1/2
 * answers) Redis and this node again: at 200 msg/s per pair across nodes those wake-ups were
 * most of the CPU the delivery waits for, and the p99 was that queueing
 * (bench/notes/cluster_hops.md). A node that sent nothing for this long sends at once.
 */
export const FRAME_GAP_MS = 1;

/**
 * A held frame this full goes at the end of the turn that filled it, not at the gap: its
 * wake-ups (Redis's and the receiving node's, ~20-30 µs of CPU in all) are already spread over
 * enough messages (a few µs each, against ~25 µs a message costs anyway), and waiting for the
 * timer (~1.1 ms at the least on Bun, ~2 ms at its p90) only adds latency. Two is enough: with
 * Bun's compilers no longer stalling the shared core (runtime/idle_helpers.ts), two against eight
 * took the cross-node p90 at 200 msg/s per pair from 1.22 to 0.45 ms and the p99 from 1.56-1.86
 * to 1.45-1.48, for ~11% more CPU per crossing message at that rate (flat out, frames fill in one
 * turn either way); bench/notes/cluster_hops.md.
 */
export const FULL_FRAME_MESSAGES = 2;
export const FULL_FRAME_BYTES = 16 * 1024;

/**
 * Sends one frame holding `count` messages to `to` (undefined: broadcast). True when it holds
 * nothing of `frame` after returning (Redis: copied into the command): its buffer is written
 * again for the next frame to `to`.
 */
export type FrameSink = (
  to: NodeId | undefined,
  frame: Uint8Array,
  count: number,
) => boolean | void;

export class FrameBatcher {
  private readonly pending = new Map<NodeId | undefined, { w: FrameWriter; count: number }>();
  /**
   * The size of the last frame to each destination: the next starts that large, not growing
   * from 4 KiB by doubling (each step a fresh buffer and a copy: ~8% of the sending node's
   * CPU in a cross-node S4 profile).
   */
  private readonly sizes = new Map<NodeId | undefined, number>();
  /**
   * Buffers of sent frames the sink copied, one per destination: the next frame is written
   * into it, not into a fresh buffer each frame (allocUnsafeSlow was ~3% of the sending node's
   * samples in an S4-rate200 cross-node profile).
   */
  private readonly spares = new Map<NodeId | undefined, Uint8Array>();
  private broadcasting = false;
  private scheduled = false;
  /** The timer holding the pending frames until the gap has passed. */
  private held: ReturnType<typeof setTimeout> | undefined;
  /** When the last frame went (performance.now()). */
  private lastSent = -Infinity;

  constructor(
    private readonly from: NodeId,
    private readonly sink: FrameSink,
    private readonly maxBytes = MAX_FRAME_BYTES,
    private readonly gapMs = FRAME_GAP_MS,
  ) {}

  /** Queue `msg` for `to` (undefined: every other node); sent at the end of this turn. */
  add(to: NodeId | undefined, msg: BusMessage): void {
    const broadcast = to === undefined;
    if (this.pending.size > 0 && broadcast !== this.broadcasting) this.flush();
    this.broadcasting = broadcast;
    let p = this.pending.get(to);
    if (!p) {
      const spare = this.spares.get(to);
      if (spare) this.spares.delete(to); // never two frames in one buffer
      p = { w: new FrameWriter(this.from, this.sizes.get(to), spare), count: 0 };
      this.pending.set(to, p);
    }
    p.w.add(msg);
    p.count++;
    if (p.w.length >= this.maxBytes) {
      this.pending.delete(to);
      this.send(to, p);
    } else if (!this.scheduled) {
      this.scheduled = true;
      // A macrotask: every connection's input read in this turn lands in the same frames; and
      // the turns until FRAME_GAP_MS after the last frame.
      const wait = full(p) ? 0 : this.lastSent + this.gapMs - performance.now();
      if (wait > 0) this.held = setTimeout(this.scheduledFlush, wait);
      else setImmediate(this.scheduledFlush);
    } else if (this.held !== undefined && full(p)) {
      clearTimeout(this.held);
      this.held = undefined;
      setImmediate(this.scheduledFlush);
    }
  }

  private readonly scheduledFlush = () => {
    this.scheduled = false;
    this.held = undefined;
    this.flush();
  };

  /** Send every pending frame now. */
  flush(): void {
    if (this.pending.size === 0) return;
    const frames = [...this.pending];
    this.pending.clear();
    for (const [to, p] of frames) this.send(to, p);
  }

  private send(to: NodeId | undefined, p: { w: FrameWriter; count: number }): void {
    // A little more than the last one; never past the largest frame.
    const hint = Math.min(p.w.length + (p.w.length >> 3) + 64, this.maxBytes + 64 * 1024);
    if (hint > 4_096) this.sizes.set(to, hint);
    else this.sizes.delete(to);
    this.lastSent = performance.now();
    // Kept only if no bigger than the largest frame's hint: one huge forwarded message must
    // not pin its buffer for good (per destination).
    const buffer = p.w.buffer;
    if (
      this.sink(to, p.w.bytes(), p.count) === true && this.spares.size < 64 &&
      buffer.length <= this.maxBytes + 64 * 1024
    ) this.spares.set(to, buffer);
  }

  /** Forget what is pending (a crashed node sends nothing more). */
  clear(): void {
    clearTimeout(this.held);
    this.held = undefined;
    this.scheduled = false;
    this.pending.clear();
    this.spares.clear();
  }
}

/** Full enough to go without waiting for the gap (FULL_FRAME_MESSAGES, per destination). */
function full(p: { w: FrameWriter; count: number }): boolean {
  return p.count >= FULL_FRAME_MESSAGES || p.w.length >= FULL_FRAME_BYTES;
}
