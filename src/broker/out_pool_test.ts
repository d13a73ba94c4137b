import { test } from "node:test";
import assert from "node:assert/strict";
import {
  giveBuffer,
  POOL_BUFFER_SIZE,
  POOL_KEEP,
  pooledBuffers,
  takeBuffer,
  TRIM_PERIODS,
  trimPool,
} from "./out_pool.ts";

/** Periods with no output at all: the pool sheds down to POOL_KEEP. */
function quiet(): void {
  trimPool();
  trimPool();
}

/** One period in which `n` buffers were out at once. */
function busy(n: number): number {
  const out = Array.from({ length: n }, () => takeBuffer(10));
  for (const b of out) giveBuffer(b);
  return trimPool();
}

test("out pool: a burst's buffers are dropped after the first period without output", () => {
  quiet(); // whatever other tests left
  // A burst: 40 connections have output in the same tick.
  const burst = Array.from({ length: 40 }, () => takeBuffer(10));
  assert.ok(burst.every((b) => b.length === POOL_BUFFER_SIZE));
  for (const b of burst) giveBuffer(b);
  assert.equal(pooledBuffers(), 40);
  // The burst's period: every buffer was out at once, so none is dropped.
  assert.equal(trimPool(), 0);
  // Nothing taken in the next period: the burst is over.
  assert.equal(trimPool(), 40 - POOL_KEEP);
  assert.equal(pooledBuffers(), POOL_KEEP);
  assert.equal(trimPool(), 0);
  // A large write takes its own buffer, which the pool does not keep.
  const big = takeBuffer(POOL_BUFFER_SIZE + 1);
  assert.ok(big.length > POOL_BUFFER_SIZE);
  giveBuffer(big);
  assert.equal(pooledBuffers(), POOL_KEEP);
});

test("out pool: traffic whose need varies keeps its buffers, sheds what it left unused", () => {
  quiet();
  assert.equal(busy(30), 0);
  // Busy periods needing fewer: the 30 stay (dropping them made the next peak allocate anew)
  for (let i = 1; i < TRIM_PERIODS; i++) assert.equal(busy(i % 2 ? 12 : 30), 0, `period ${i}`);
  assert.equal(pooledBuffers(), 30);
  // TRIM_PERIODS busy periods in a row needing at most 12: the other 18 go, at once.
  let dropped = 0;
  for (let i = 0; i < TRIM_PERIODS; i++) dropped += busy(12);
  assert.equal(dropped, 18);
  assert.equal(pooledBuffers(), 12);
  // And once output stops, down to POOL_KEEP.
  quiet();
  assert.equal(pooledBuffers(), POOL_KEEP);
});
