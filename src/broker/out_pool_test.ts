import { test } from "node:test";
import assert from "node:assert/strict";
import {
  giveBuffer,
  POOL_BUFFER_SIZE,
  POOL_KEEP,
  pooledBuffers,
  takeBuffer,
  trimPool,
} from "./out_pool.ts";

test("out pool: a burst's buffers are dropped once unused for a whole period", () => {
  trimPool();
  trimPool(); // whatever other tests left: down to POOL_KEEP at most
  // A burst: 40 connections have output in the same tick.
  const burst = Array.from({ length: 40 }, () => takeBuffer(10));
  assert.ok(burst.every((b) => b.length === POOL_BUFFER_SIZE));
  for (const b of burst) giveBuffer(b);
  assert.equal(pooledBuffers(), 40);
  // The burst's period: every buffer was out at once, so none is dropped.
  assert.equal(trimPool(), 0);
  // Steady traffic needs two at a time: those stay, as do POOL_KEEP in all.
  const two = [takeBuffer(1), takeBuffer(1)];
  for (const b of two) giveBuffer(b);
  assert.equal(trimPool(), 40 - POOL_KEEP);
  assert.equal(pooledBuffers(), POOL_KEEP);
  assert.equal(trimPool(), 0);
  // A large write takes its own buffer, which the pool does not keep.
  const big = takeBuffer(POOL_BUFFER_SIZE + 1);
  assert.ok(big.length > POOL_BUFFER_SIZE);
  giveBuffer(big);
  assert.equal(pooledBuffers(), POOL_KEEP);
});
