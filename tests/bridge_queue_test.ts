// The bridge's outbound queue, in memory, against the BridgeQueue contract.
import { test } from "node:test";
import assert from "node:assert/strict";
import { MemoryBridgeQueue } from "../src/bridge/mqtt_queue.ts";
import { bridgeQueueContract } from "./helpers/bridge_queue_contract.ts";

bridgeQueueContract("memory", { make: (max) => new MemoryBridgeQueue(max) });

test("memory: a long run of pushes and out-of-order removals stays consistent", () => {
  const q = new MemoryBridgeQueue(5000);
  const live: number[] = [];
  for (let round = 0; round < 20; round++) {
    for (let i = 0; i < 300; i++) {
      q.push({ topic: "t", payload: new Uint8Array(1), qos: 1, retain: false });
    }
    const seqs = q.peek(0, 10_000).map((m) => m.seq);
    // Remove every other one, newest first, then the rest from the front.
    for (let i = seqs.length - 1; i >= 0; i -= 2) q.remove(seqs[i]);
    const left = q.peek(0, 10_000).map((m) => m.seq);
    for (const s of left.slice(0, 100)) q.remove(s);
    live.length = 0;
    live.push(...q.peek(0, 10_000).map((m) => m.seq));
    assert.equal(q.size(), live.length);
    for (let i = 1; i < live.length; i++) assert.ok(live[i] > live[i - 1]);
  }
});
