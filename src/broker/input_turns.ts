/**
 * Fair turns for input. A connection handles a budget of its input at once
 * (below); the rest of its chunk waits here (its reads paused) and is
 * handled on a later macrotask, after the event loop has polled the other
 * sockets. Without this, 100 publishers whose reads brought 64 PUBLISHes
 * each held the loop for all 6,400 while a subscriber's acknowledgements,
 * which refill its window, waited.
 */
import { setImmediate } from "node:timers";

/**
 * A connection's turn ends at the first packet boundary past both bounds of
 * the budget in force, unless less than its byte bound is left (a tail that
 * small is handled at once: a turn of its own would cost more than it gives).
 *
 * While a subscriber waits on its acknowledgements (its QoS 1/2 window is
 * full, see subscriberWaits) the budget is tight: BYTES_PER_TURN bytes and
 * PACKETS_PER_TURN packets. Counting bytes lets a subscriber's 4-byte PUBACKs
 * through in the numbers that keep its window full; the packet floor keeps
 * large PUBLISHes from costing a turn each. Chosen with `make bench` on Bun,
 * one run each (S2 QoS 1 is 100 publishers into one subscriber, delivered
 * msg/s; S1 QoS 1 is 1000 publishers of 1 KiB, msg/s): no budget 31k / 385k;
 * 512 B with 8 packets 194k / 319k, with 16 115k / 365k, with 32 60k / 356k.
 *
 * Otherwise nobody's progress hangs on reading someone's input promptly, and
 * the budget only keeps one connection's burst from holding the loop: a read's
 * worth (LOOSE_BYTES_PER_TURN, LOOSE_PACKETS_PER_TURN; node:net reads 64 KiB),
 * and at most LOOSE_MAX_PACKETS packets (64 KiB of PINGREQs would be 32,768).
 * Tight turns cost ingest more than their bookkeeping: every chunk left for a
 * later turn is still alive when the collector runs, so it survives into the
 * old generation, the heap's limit grows with it, and each new chunk lands on
 * fresh pages (S1 QoS 0 on Bun: 0.45 page faults per message against 0.08,
 * RSS 49 -> 228 MB against 49 -> 80 MB). Measured on Bun, tight everywhere
 * against this switch, alternating runs on the busy machine, messages per
 * broker CPU-second: S1 QoS 0 240-400k -> 385-525k (with topic_names.ts's
 * four ways); S3 (one publisher into 100 subscribers) 2.2-2.4M -> 7.6-8.0M;
 * S2 QoS 1 delivered 179-193k -> 170-189k (tight there either way); S4 level.
 */
export const BYTES_PER_TURN = 512;
export const PACKETS_PER_TURN = 8;
/**
 * Tight turns that each end with a poll (`ioTurn`, Deno) are half that: the subscriber's
 * PUBACKs are read only at a poll, so a shorter turn refills its window sooner. S2 QoS 1 on
 * Deno, alternating rounds: delivered 42k (512 B, 8) against 68k (256 B, 4) and 54k (128 B, 2),
 * S4 level. Not on Bun, which polls every tick anyway: there 256 B / 4 cost S4 ~20% (S4 fills
 * subscriber windows too) (bench/notes/deno_s2_qos1.md).
 */
export const IO_BYTES_PER_TURN = 256;
export const IO_PACKETS_PER_TURN = 4;
export const LOOSE_BYTES_PER_TURN = 64 * 1024;
export const LOOSE_PACKETS_PER_TURN = 64;
export const LOOSE_MAX_PACKETS = 1024;
/** How long turns stay tight after a subscriber last waited, ms. */
export const TIGHT_MS = 1000;

export interface TurnBudget {
  readonly bytes: number;
  /** At least this many packets (a floor: large packets). */
  readonly packets: number;
  /** At most this many, whatever their size (a cap: tiny packets). */
  readonly maxPackets: number;
}
const TIGHT: TurnBudget = {
  bytes: BYTES_PER_TURN,
  packets: PACKETS_PER_TURN,
  maxPackets: Infinity, // 512 B holds at most 256 packets
};
const TIGHT_IO: TurnBudget = {
  bytes: IO_BYTES_PER_TURN,
  packets: IO_PACKETS_PER_TURN,
  maxPackets: Infinity,
};
const LOOSE: TurnBudget = {
  bytes: LOOSE_BYTES_PER_TURN,
  packets: LOOSE_PACKETS_PER_TURN,
  maxPackets: LOOSE_MAX_PACKETS,
};

let waited = false;
let tightUntil = -Infinity;
let tight = false;
let ioTurn: ((f: () => void) => void) | undefined;
let ioTurnPolls: () => boolean = () => true;

/**
 * A connected session's QoS 1/2 window is full and a message waits (queued or
 * dropped): its acknowledgements must be read promptly, so turns go tight. A
 * flag, not a clock read: this runs for every message such a session is sent.
 */
export function subscriberWaits(): void {
  waited = true;
}

/** The budget for input handled at `now` (ms). */
export function turnBudget(now: number): TurnBudget {
  if (waited) {
    waited = false;
    tightUntil = now + TIGHT_MS;
  }
  tight = now < tightUntil;
  return !tight ? LOOSE : ioTurn && ioTurnPolls() ? TIGHT_IO : TIGHT;
}

/**
 * The runtime's turn that comes after a poll of its sockets (`Runtime.ioTurn`), taken while
 * turns are tight; undefined: `setImmediate`. On Deno a chain of `setImmediate`s runs with no
 * poll between them while the publishers still have input, so the subscriber's PUBACKs were
 * read once per ~4,300 PUBLISHes (runtime/io_turn_deno.ts); otherwise turns keep
 * `setImmediate`, which costs less and is all a loose budget needs.
 */
export function useIoTurn(
  f: ((f: () => void) => void) | undefined,
  polls: () => boolean = () => true,
): void {
  ioTurn = f;
  ioTurnPolls = polls; // false: ioTurn is a setImmediate for now, the wider budget costs less
}

/** handleInput's answer, called from resumeInput, when it left input for later again. */
export const STILL_WAITING: Promise<void> = new Promise(() => {});

export interface TurnTaker {
  /** Handle the next budget of the input left over (called once per turn). */
  resumeInput(): void;
}

// Two lists swapped each turn: a connection that uses up its budget again
// goes into the next turn's list, behind the ones that waited.
let waiting: (TurnTaker | undefined)[] = [];
let waitingCount = 0;
let spare: (TurnTaker | undefined)[] = [];
let scheduled = false;

/** Give `c` another turn after the event loop has polled for I/O. */
export function waitForTurn(c: TurnTaker): void {
  waiting[waitingCount++] = c;
  if (!scheduled) {
    scheduled = true;
    if (tight && ioTurn) ioTurn(nextTurn);
    else setImmediate(nextTurn);
  }
}

function nextTurn(): void {
  scheduled = false;
  const turn = waiting;
  const n = waitingCount;
  waiting = spare;
  waitingCount = 0;
  spare = turn;
  for (let i = 0; i < n; i++) {
    const c = turn[i]!;
    turn[i] = undefined;
    c.resumeInput();
  }
}
