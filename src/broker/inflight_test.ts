import { test } from "node:test";
import assert from "node:assert/strict";
import { InflightWindow } from "./inflight.ts";

/** A seeded generator, so a failure can be replayed. */
function rng(seed: number): () => number {
  return () => {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
    return seed / 2 ** 32;
  };
}

test("behaves like an insertion-ordered Map under random sends, acks and resends", () => {
  for (const seed of [1, 2, 3, 42, 1234]) {
    const random = rng(seed);
    const w = new InflightWindow<string>();
    const model = new Map<number, string>();
    let next = 0;
    for (let step = 0; step < 20000; step++) {
      const r = random();
      if (r < 0.5 && model.size < 300) {
        next = next === 65535 ? 1 : next + 1;
        if (model.has(next)) continue;
        w.set(next, `m${step}`);
        model.set(next, `m${step}`);
      } else if (r < 0.8 && model.size > 0) {
        // Acknowledge the oldest (usual) or any (out of order).
        const keys = [...model.keys()];
        const id = random() < 0.7 ? keys[0] : keys[Math.floor(random() * keys.length)];
        assert.equal(w.delete(id), true);
        model.delete(id);
      } else if (r < 0.9) {
        const id = 1 + Math.floor(random() * 400);
        assert.equal(w.has(id), model.has(id));
        assert.equal(w.get(id), model.get(id));
        assert.equal(w.delete(id + 70000), false);
      } else if (r < 0.995 && model.size > 0) {
        // A PUBREC marks its entry: set() on a present id keeps its place.
        const id = [...model.keys()][Math.floor(random() * model.size)];
        w.set(id, `rel${step}`);
        model.set(id, `rel${step}`);
      } else {
        w.clear();
        model.clear();
      }
      assert.equal(w.size, model.size);
    }
    assert.deepEqual([...w], [...model]);
    assert.deepEqual([...w.values()], [...model.values()]);
  }
});

test("deleting while walking (a resend that drops a message) visits every entry once", () => {
  const w = new InflightWindow<number>();
  for (let id = 1; id <= 20; id++) w.set(id, id);
  const seen: number[] = [];
  for (const [id] of w) {
    seen.push(id);
    if (id % 3 === 0) w.delete(id);
  }
  assert.deepEqual(seen, Array.from({ length: 20 }, (_, i) => i + 1));
  assert.equal(w.size, 14);
  assert.deepEqual([...w].map(([id]) => id), seen.filter((id) => id % 3 !== 0));
});

test("a stuck oldest entry does not stop the ring from reusing its other slots", () => {
  const w = new InflightWindow<number>();
  w.set(1, 1); // never acknowledged
  for (let id = 2; id < 5000; id++) {
    w.set(id, id);
    w.delete(id);
  }
  assert.equal(w.size, 1);
  assert.deepEqual([...w], [[1, 1]]);
});

test("growing and repacking keep the same two arrays (V8 compiles against them as constants)", () => {
  const w = new InflightWindow<number>();
  const arrays = (
    x: InflightWindow<number>,
  ) => [(x as unknown as { ids: unknown }).ids, (x as unknown as { items: unknown }).items];
  const [ids, items] = arrays(w);
  for (let id = 1; id <= 40; id++) w.set(id, id); // grows 8 -> 16 -> 32 -> 64
  for (let id = 1; id <= 40; id += 2) w.delete(id);
  for (let id = 41; id <= 120; id++) w.set(id, id); // repacks the holes, grows again
  const [ids2, items2] = arrays(w);
  assert.equal(ids2, ids);
  assert.equal(items2, items);
  assert.equal(w.size, 100);
  assert.deepEqual([...w.values()].slice(0, 3), [2, 4, 6]);
});
