import { test } from "node:test";
import assert from "node:assert/strict";
import { setImmediate } from "node:timers";
import { FrameBatcher, FULL_FRAME_BYTES, FULL_FRAME_MESSAGES } from "./batch.ts";
import { decodeBusFrame } from "./codec.ts";
import type { BusMessage, NodeId } from "./types.ts";

const ack = (id: number): BusMessage => ({ kind: "ack", ids: [id], ok: true });
const turnEnd = () => new Promise((r) => setImmediate(r));

/** A batcher whose frames are recorded as the ack ids they hold. */
function recording(gapMs: number) {
  const frames: { to: NodeId | undefined; ids: number[] }[] = [];
  const batcher = new FrameBatcher(
    "a",
    (to, frame) => {
      const msgs = decodeBusFrame(frame)!.msgs;
      frames.push({ to, ids: msgs.map((m) => m.kind === "ack" ? m.ids[0] : -1) });
    },
    undefined,
    gapMs,
  );
  return { batcher, frames };
}

test("frames: a turn's messages go at its end; soon after a frame, with the next turns' too", async () => {
  // A gap far longer than a turn on a loaded machine: what waits for it is clear.
  const { batcher, frames } = recording(1_000);
  batcher.add("b", ack(1));
  batcher.add("b", ack(2));
  await turnEnd();
  await turnEnd();
  assert.deepEqual(frames, [{ to: "b", ids: [1, 2] }], "the first frame goes at once");
  // Short of a full frame, one message a turn (with FULL_FRAME_MESSAGES 2: one message).
  const held = Array.from({ length: FULL_FRAME_MESSAGES - 1 }, (_, i) => 3 + i);
  for (const id of held) {
    batcher.add("b", ack(id));
    await turnEnd();
  }
  await turnEnd();
  assert.equal(frames.length, 1, "held until the gap after the last frame has passed");
  const start = performance.now();
  while (frames.length < 2 && performance.now() - start < 10_000) {
    await new Promise((r) => setTimeout(r, 20));
  }
  assert.deepEqual(frames[1], { to: "b", ids: held }, "every turn's messages in one frame");
  // Held in one turn, then filled in a later one: the turns' messages go in one frame.
  batcher.add("b", ack(50)); // held: a frame went just now
  await turnEnd();
  await turnEnd();
  assert.equal(frames.length, 2);
  const later = Array.from({ length: FULL_FRAME_MESSAGES - 1 }, (_, i) => 51 + i);
  for (const id of later) batcher.add("b", ack(id));
  await turnEnd();
  await turnEnd();
  assert.deepEqual(frames[2], { to: "b", ids: [50, ...later] }, "sent once full, both turns'");
  batcher.clear();
});

test("frames: a broadcast sends what is held first, in order", async () => {
  const { batcher, frames } = recording(1_000);
  batcher.add("b", ack(1));
  await turnEnd();
  await turnEnd();
  batcher.add("b", ack(2)); // held: a frame went just now
  batcher.add(undefined, ack(3)); // a broadcast must not overtake it
  assert.deepEqual(frames.slice(1), [{ to: "b", ids: [2] }]);
  batcher.flush();
  assert.deepEqual(frames.slice(2), [{ to: undefined, ids: [3] }]);
});

test("frames: a buffer is written again only when the sink says it holds nothing of it", () => {
  const kept: Uint8Array[] = [];
  const copied: Uint8Array[] = [];
  const buffers: ArrayBufferLike[] = [];
  const keeping = new FrameBatcher("a", (_, frame) => void kept.push(frame), undefined, 0);
  const copying = new FrameBatcher(
    "a",
    (_, frame) => {
      copied.push(frame.slice());
      buffers.push(frame.buffer);
      return true;
    },
    undefined,
    0,
  );
  for (let id = 1; id <= 3; id++) {
    for (const b of [keeping, copying]) {
      b.add("b", ack(id));
      b.flush();
    }
  }
  const ids = (fs: Uint8Array[]) =>
    fs.map((f) => decodeBusFrame(f)!.msgs.map((m) => m.kind === "ack" ? m.ids[0] : -1));
  assert.deepEqual(ids(kept), [[1], [2], [3]], "a frame the sink keeps is never overwritten");
  assert.deepEqual(ids(copied), [[1], [2], [3]]);
  assert.notEqual(kept[0].buffer, kept[1].buffer);
  assert.equal(buffers.length, 3);
  assert.equal(buffers[0], buffers[1], "a copied frame's buffer is written again");
  assert.equal(buffers[1], buffers[2]);
});

test("frames: a held frame that fills up goes at the end of its turn, not at the gap", async () => {
  const { batcher, frames } = recording(1_000);
  batcher.add("b", ack(1));
  await turnEnd();
  await turnEnd();
  assert.equal(frames.length, 1);
  for (let id = 2; id < 1 + FULL_FRAME_MESSAGES; id++) batcher.add("b", ack(id));
  await turnEnd();
  await turnEnd();
  assert.equal(frames.length, 1, `${FULL_FRAME_MESSAGES - 1} messages: held for the gap`);
  // The next fills it; the ones after it in the same turn still join that frame, sent once.
  for (let id = 1 + FULL_FRAME_MESSAGES; id <= 4 + FULL_FRAME_MESSAGES; id++) {
    batcher.add("b", ack(id));
  }
  await turnEnd();
  await turnEnd();
  assert.equal(frames.length, 2, "full: sent at the end of the turn");
  assert.equal(frames[1].ids.length, FULL_FRAME_MESSAGES + 3);
  batcher.add("b", ack(100)); // and the next is held again
  await turnEnd();
  await turnEnd();
  assert.equal(frames.length, 2);
  batcher.flush();
  assert.equal(frames.length, 3);
  // Full by size: one message of FULL_FRAME_BYTES (an answer of many ids) goes at the turn's end.
  const ids = Array.from({ length: FULL_FRAME_BYTES / 8 }, (_, i) => 200 + i);
  batcher.add("b", { kind: "ack", ids, ok: true });
  await turnEnd();
  await turnEnd();
  assert.deepEqual(frames.slice(3).map((f) => f.ids), [[200]], "one large message: not held");
  batcher.clear(); // and clear() stops the gap's timer
});
