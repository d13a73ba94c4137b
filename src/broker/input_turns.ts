/**
 * Fair turns for input. A connection handles about BYTES_PER_TURN bytes of
 * input at once; the rest of its chunk waits here (its reads
 * paused) and is handled on a later macrotask, after the event loop has
 * polled the other sockets. Without this, a publisher whose read brought
 * a few thousand PUBLISHes held the loop for all of them while every other
 * client, a subscriber's acknowledgements included, waited.
 */
import { setImmediate } from "node:timers";

/**
 * Input bytes one connection has handled per turn (at a packet boundary; at
 * least one packet) before the others get theirs. Counting bytes, not
 * packets, lets a subscriber's 4-byte PUBACKs through in the numbers that
 * keep its window full. Chosen by `make bench` S2 QoS 1 on Bun, with 100
 * publishers and one subscriber (delivered msg/s, one run each): 256 B 57k,
 * 384 B 66k, 512 B 88-101k, 768 B 87k, 1 KiB 60k, 2 KiB 44k; no budget 21k.
 */
export const BYTES_PER_TURN = 512;

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
