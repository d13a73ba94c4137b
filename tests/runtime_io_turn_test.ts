/**
 * The runtime's I/O turn (`Runtime.ioTurn`, else `setImmediate`, what the core's fair input
 * turns take while a subscriber waits): a chain of turns that always has another one ready must
 * still let a socket's data in after a few of them. Deno ran `setImmediate`s back to back without
 * polling its sockets (about one poll per 61 of them), so a QoS 1 subscriber's PUBACKs waited
 * behind thousands of PUBLISHes (runtime/io_turn_deno.ts).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { setImmediate } from "node:timers";
import { testRuntime } from "./helpers/harness.ts";
import { collectCallbacks, connect, serve, within } from "./helpers/runtime_conn.ts";
import type { TransportConn as Conn } from "../src/runtime/types.ts";

/** Turns taken, each scheduling the next, until `arrived()`; at most `limit`. */
function turnsUntil(turn: (f: () => void) => void, arrived: () => boolean, limit: number) {
  return new Promise<number>((resolve) => {
    let turns = 0;
    const step = () => {
      if (arrived() || turns >= limit) return resolve(turns);
      turns++;
      turn(step);
    };
    turn(step);
  });
}

test("a chain of I/O turns lets a socket's data in within a few turns", async () => {
  const runtime = await testRuntime();
  const turn = runtime.ioTurn ? (f: () => void) => runtime.ioTurn!(f) : setImmediate;
  let accepted!: (c: Conn) => void;
  const conn = new Promise<Conn>((r) => accepted = r);
  const listener = await serve((c) => accepted(c));
  const client = await connect(listener.port);
  try {
    const got = collectCallbacks(await within(conn, 10_000, "accept"));
    const counts: number[] = [];
    for (let i = 0; i < 20; i++) {
      const before = got.chunks.length;
      client.write(new Uint8Array([i]));
      counts.push(await turnsUntil(turn, () => got.chunks.length > before, 1000));
    }
    counts.sort((a, b) => a - b);
    const median = counts[counts.length >> 1];
    // Node and Bun poll every turn (1-2); Deno's setImmediate chain took about 60-120.
    assert.ok(median <= 8, `data came after ${median} turns (median; all: ${counts})`);
    assert.equal(got.bytes().length, 20);
  } finally {
    client.destroy();
    await listener.close();
  }
});

test("I/O turns run in order, also once no listener is open", async () => {
  const runtime = await testRuntime();
  const turn = runtime.ioTurn ? (f: () => void) => runtime.ioTurn!(f) : setImmediate;
  const listener = await serve(() => {});
  const ran: number[] = [];
  await new Promise<void>((resolve) => {
    for (let i = 0; i < 5; i++) turn(() => ran.push(i));
    turn(resolve);
  });
  await listener.close();
  await new Promise<void>((resolve) => {
    for (let i = 5; i < 10; i++) turn(() => ran.push(i));
    turn(resolve);
  });
  assert.deepEqual(ran, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
});
