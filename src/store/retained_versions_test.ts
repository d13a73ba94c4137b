import { test } from "node:test";
import assert from "node:assert/strict";
import { RetainedVersions, TOMBSTONE_MS } from "./retained_versions.ts";
import type { MessageData } from "./types.ts";

const m = (payload: string): MessageData => ({
  topic: "t",
  payload: new TextEncoder().encode(payload),
  qos: 0,
  retain: true,
});
const shown = (r: RetainedVersions) => {
  const got = r.memory.index.get("t");
  return got && new TextDecoder().decode(got.payload);
};

test("retained versions: another node's change is taken only if newer, in any order", () => {
  const r = new RetainedVersions();
  r.heard("t", 5, m("five"));
  r.heard("t", 3, m("three"));
  assert.equal(shown(r), "five");
  r.heard("t", 7, undefined); // a clear
  r.heard("t", 6, m("six")); // older than the clear: brings nothing back
  assert.equal(shown(r), undefined);
  assert.deepEqual(r.held("t"), { version: 7, message: undefined });
  assert.equal(r.newest, 7);
});

test("retained versions: a write from here shows at once; once answered, the newest shows", () => {
  const r = new RetainedVersions();
  r.heard("t", 1, m("one"));
  const mine = r.local("t", m("mine"));
  r.heard("t", 9, m("nine")); // ordered after this node's write, heard before its answer
  assert.equal(shown(r), "mine");
  assert.equal(r.held("t"), undefined, "nothing to announce while the write is under way");
  r.written("t", mine, 8);
  assert.equal(shown(r), "nine");
  // The other way round: this node's write is the later one.
  const again = r.local("t", m("again"));
  r.heard("t", 10, m("ten"));
  r.written("t", again, 11);
  assert.equal(shown(r), "again");
  assert.deepEqual(r.held("t")?.version, 11);
});

test("retained versions: two writes from here in flight show the later one throughout", () => {
  const r = new RetainedVersions();
  const first = r.local("t", m("first"));
  const second = r.local("t", m("second"));
  r.written("t", first, 1);
  assert.equal(shown(r), "second", "the earlier answer does not bring the first back");
  r.written("t", second, 2);
  assert.equal(shown(r), "second");
});

test("retained versions: a write Redis never took gives way to a change it took", () => {
  const r = new RetainedVersions();
  r.local("t", m("lost"));
  r.heard("t", 4, m("four"));
  r.abandon("t");
  assert.equal(shown(r), "four");
  assert.equal(r.unwritten("t"), undefined);
});

test("retained versions: past a forgotten tombstone, an unknown topic's change is checked", () => {
  const r = new RetainedVersions();
  const realNow = Date.now;
  try {
    Date.now = () => 1_000;
    r.heard("old", 5, undefined);
    Date.now = () => 1_000 + TOMBSTONE_MS + 1;
    r.heard("other", 6, undefined); // sweeps "old"'s tombstone
    assert.equal(r.heard("old", 4, m("stale?")), false, "not known: read Redis");
    assert.equal(r.memory.index.get("old"), undefined);
    r.fromRedis("old", 6, undefined); // what Redis says
    assert.equal(r.heard("t", 7, m("seven")), true, "newer than every forgotten one: taken");
    assert.equal(shown(r), "seven");
  } finally {
    Date.now = realNow;
  }
});

test("retained versions: what Redis holds after it lost its data is taken whatever its version", () => {
  const r = new RetainedVersions();
  r.heard("t", 50, m("before"));
  r.fromRedis("t", 3, m("reseeded"));
  assert.equal(shown(r), "before", "an older version is not taken");
  r.fromRedis("t", 3, m("reseeded"), true);
  assert.equal(shown(r), "reseeded");
});
