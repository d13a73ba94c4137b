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
 * A connection's turn ends at the first packet boundary past both bounds:
 * BYTES_PER_TURN bytes and PACKETS_PER_TURN packets of its input. Counting
 * bytes lets a subscriber's 4-byte PUBACKs through in the numbers that keep
 * its window full; the packet floor keeps large PUBLISHes from costing a
 * turn each. Chosen with `make bench` on Bun, one run each (S2 QoS 1 is 100
 * publishers into one subscriber, delivered msg/s; S1 QoS 1 is 1000
 * publishers of 1 KiB, msg/s): no budget 31k / 385k; 512 B with 8 packets
 * 194k / 319k, with 16 115k / 365k, with 32 60k / 356k.
 */
export const BYTES_PER_TURN = 512;
export const PACKETS_PER_TURN = 8;

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
    setImmediate(nextTurn);
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
