import { test } from "node:test";
import assert from "node:assert/strict";
import { byMessageId, MessageIds, nodeSuffix } from "./ids.ts";

test("two nodes' ids of the same millisecond differ, and sort by count first", () => {
  const clock = () => 1_700_000_000_000;
  const a = new MessageIds(clock, nodeSuffix("001"));
  const b = new MessageIds(clock, nodeSuffix("002"));
  const fromA = [a.next(), a.next()];
  const fromB = [b.next(), b.next()];
  assert.notEqual(fromA[0], fromB[0]);
  assert.ok(fromA[0].endsWith(".001") && fromB[1].endsWith(".002"));
  const sorted = [fromB[1], fromA[1], fromB[0], fromA[0]].map((messageId) => ({ messageId }))
    .sort(byMessageId).map((m) => m.messageId);
  assert.deepEqual(sorted, [fromA[0], fromB[0], fromA[1], fromB[1]]);
});

test("a loaded id of any node (or none) is observed by its count", () => {
  const ids = new MessageIds(() => 1, nodeSuffix(7));
  const other = new MessageIds(() => 5_000, nodeSuffix("x"));
  const seen = other.next();
  ids.observe(seen);
  ids.observe("zzzz"); // an id of an older build, no suffix: its count alone (smaller here)
  const next = ids.next();
  assert.ok(next.slice(0, 11) > seen.slice(0, 11), `${next} after ${seen}`);
});

test("a broker id becomes a suffix safe in a Redis key", () => {
  assert.equal(nodeSuffix("node-a_1"), ".node-a_1");
  assert.equal(nodeSuffix("a{b}:*"), ".a%7bb%7d%3a%2a");
  assert.equal(nodeSuffix("é"), ".%c3%a9");
});
