// PacketDecoder.feed with a byte budget: stops at a packet boundary, and the rest fed again from
// there gives the same packets in the same order.
import { test } from "node:test";
import assert from "node:assert/strict";
import { PacketDecoder } from "./decoder.ts";
import { encode } from "./encoder.ts";
import type { Packet } from "./packet.ts";

const publish = (i: number): Packet => ({
  type: 3,
  topic: "t/" + i,
  payload: new Uint8Array(i % 7),
  qos: 1,
  retain: false,
  dup: false,
  packetId: i,
});

function concat(parts: Uint8Array[]): Uint8Array {
  const all = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) all.set(p, (at += p.length) - p.length);
  return all;
}

test("feed with a budget stops at a packet boundary past it and resumes there", () => {
  const sizes: number[] = [];
  const parts = [];
  for (let i = 1; i <= 50; i++) {
    const bytes = encode(publish(i), 4);
    sizes.push(bytes.length);
    parts.push(bytes);
  }
  // A split packet at the end: its head arrives with this chunk, its tail with the next.
  const last = encode(publish(51), 4);
  const chunk = concat([...parts, last.subarray(0, 3)]);
  const d = new PacketDecoder();
  d.version = 4;
  const ids: number[] = [];
  const onPacket = (p: Packet) => ids.push((p as { packetId: number }).packetId);
  let pos = 0, calls = 0;
  while (pos < chunk.length) {
    const before = ids.length;
    const stop = d.feed(chunk, onPacket, pos, 40);
    calls++;
    assert.ok(ids.length > before || stop === chunk.length, "each call makes progress");
    if (stop < chunk.length) {
      // At a boundary: the bytes consumed are exactly the packets decoded, at least the budget.
      const used = sizes.slice(before, ids.length).reduce((a, b) => a + b, 0);
      assert.equal(stop - pos, used);
      assert.ok(used >= 40 && used - sizes[ids.length - 1] < 40);
    }
    pos = stop;
  }
  assert.ok(calls > 5);
  d.feed(last.subarray(3), onPacket);
  assert.deepEqual(ids, Array.from({ length: 51 }, (_, i) => i + 1));
});

test("feed with a packet floor goes on past the byte budget until that many packets", () => {
  const chunk = concat(Array.from({ length: 20 }, (_, i) => encode(publish(i + 1), 4)));
  const d = new PacketDecoder();
  d.version = 4;
  let n = 0;
  const stop = d.feed(chunk, () => n++, 0, 1, 5);
  assert.equal(n, 5);
  assert.ok(stop < chunk.length);
  d.feed(chunk, () => n++, stop);
  assert.equal(n, 20);
});

test("feed with a budget takes a tail smaller than the budget at once", () => {
  const parts = Array.from({ length: 10 }, (_, i) => encode(publish(i + 1), 4));
  const chunk = concat(parts);
  const d = new PacketDecoder();
  d.version = 4;
  let n = 0;
  // The budget is spent after 9 packets; the one left is smaller than its byte bound: taken too.
  const lastSize = parts[9].length;
  assert.equal(d.feed(chunk, () => n++, 0, lastSize + 1, 9), chunk.length);
  assert.equal(n, 10);
  // With a budget no larger than that packet, the decoder stops before it.
  n = 0;
  const d2 = new PacketDecoder();
  d2.version = 4;
  assert.equal(d2.feed(chunk, () => n++, 0, lastSize, 9), chunk.length - lastSize);
  assert.equal(n, 9);
});

test("feed with a packet cap stops after that many packets, whatever their bytes", () => {
  const chunk = concat(Array.from({ length: 20 }, (_, i) => encode(publish(i + 1), 4)));
  const d = new PacketDecoder();
  d.version = 4;
  let n = 0;
  const stop = d.feed(chunk, () => n++, 0, chunk.length, 1, 6);
  assert.equal(n, 6);
  d.feed(chunk, () => n++, stop);
  assert.equal(n, 20);
});
