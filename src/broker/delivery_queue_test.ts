import { test } from "node:test";
import assert from "node:assert/strict";
import { DeliveryQueue } from "./delivery_queue.ts";

/** A seeded generator, so a failure can be replayed. */
function rng(seed: number): () => number {
  return () => {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
    return seed / 2 ** 32;
  };
}

test("behaves like an array used as a FIFO under random pushes, takes and clears", () => {
  for (const seed of [1, 2, 3, 42, 1234]) {
    const random = rng(seed);
    const q = new DeliveryQueue<number>();
    let model: number[] = [];
    for (let step = 0; step < 20000; step++) {
      const r = random();
      if (r < 0.55 && model.length < 1500) {
        q.push(step);
        model.push(step);
      } else if (r < 0.995) {
        // Mostly one at a time (a PUBACK), sometimes a longer drain, sometimes past the end.
        const n = random() < 0.8 ? 1 : Math.floor(random() * (model.length + 3));
        q.dropFront(n);
        model = model.slice(n);
      } else {
        q.clear();
        model = [];
      }
      assert.equal(q.length, model.length);
      assert.equal(q.get(0), model[0]);
      assert.equal(q.get(model.length - 1), model[model.length - 1]);
      assert.equal(q.get(model.length), undefined);
      if (step % 97 === 0) assert.deepEqual([...q], model);
    }
  }
});

test("a queue kept full while taken one at a time keeps its order and holds no taken entry", () => {
  const q = new DeliveryQueue<{ n: number }>();
  for (let n = 0; n < 1000; n++) q.push({ n });
  for (let n = 1000; n < 5000; n++) {
    assert.equal(q.get(0)!.n, n - 1000);
    q.dropFront(1);
    q.push({ n });
  }
  assert.deepEqual([...q].map((x) => x.n), Array.from({ length: 1000 }, (_, i) => 4000 + i));
  // Taken entries are not kept reachable: at most the uncompacted half of the array.
  const items = (q as unknown as { items: unknown[] }).items;
  assert.ok(items.length <= 2000, `array holds ${items.length} slots for 1000 entries`);
  assert.equal(items.filter((x) => x !== undefined).length, 1000);
});
