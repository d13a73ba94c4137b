import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { MATCH_CACHE_TOPICS, TopicIndex } from "./topic_index.ts";
import { RetainedIndex } from "../store/retained_index.ts";
import { topicMatches } from "../mqtt/topic.ts";

// MQTT 3.1.1 section 4.7 examples: [filter, topic, matches].
const SPEC: [string, string, boolean][] = [
  ["sport/tennis/player1/#", "sport/tennis/player1", true],
  ["sport/tennis/player1/#", "sport/tennis/player1/ranking", true],
  ["sport/tennis/player1/#", "sport/tennis/player1/score/wimbledon", true],
  ["sport/#", "sport", true],
  ["#", "sport/tennis", true],
  ["sport/tennis/+", "sport/tennis/player1", true],
  ["sport/tennis/+", "sport/tennis/player1/ranking", false],
  ["sport/+", "sport", false],
  ["sport/+", "sport/", true],
  ["+/+", "/finance", true],
  ["/+", "/finance", true],
  ["+", "/finance", false],
  ["+/tennis/#", "sport/tennis/player1", true],
  ["sport/+/player1", "sport/tennis/player1", true],
  ["#", "$SYS/monitor/Clients", false],
  ["+/monitor/Clients", "$SYS/monitor/Clients", false],
  ["$SYS/#", "$SYS/monitor/Clients", true],
  ["$SYS/monitor/+", "$SYS/monitor/Clients", true],
  ["ACCOUNTS", "Accounts", false],
  ["/finance", "finance", false],
];

function matchedFilters(index: TopicIndex<number>, topic: string): string[] {
  const out: string[] = [];
  index.match(topic, (_value, key, filter) => out.push(`${filter}|${key}`));
  return out.sort();
}

describe("spec section 4.7 examples: topicMatches, TopicIndex and RetainedIndex agree", () => {
  for (const [filter, topic, expected] of SPEC) {
    test(`${filter} ${expected ? "matches" : "does not match"} ${topic}`, () => {
      assert.equal(topicMatches(filter, topic), expected);
      const index = new TopicIndex<number>();
      index.add(filter, "c", 1);
      assert.deepEqual(matchedFilters(index, topic), expected ? [`${filter}|c`] : []);
      const retained = new RetainedIndex<number>();
      retained.set(topic, 1);
      const topics: string[] = [];
      retained.match(filter, (t) => topics.push(t));
      assert.deepEqual(topics, expected ? [topic] : []);
    });
  }

  test("all spec filters in one index, each topic matches exactly the expected set", () => {
    const index = new TopicIndex<number>();
    for (const [filter] of SPEC) index.add(filter, "c", 0);
    for (const [, topic] of SPEC) {
      const expected = [...new Set(SPEC.map(([f]) => f))].filter((f) => topicMatches(f, topic));
      assert.deepEqual(matchedFilters(index, topic), expected.map((f) => `${f}|c`).sort());
    }
  });
});

describe("TopicIndex add/get/remove", () => {
  test("add returns the previous value and replaces it", () => {
    const index = new TopicIndex<string>();
    assert.equal(index.add("a/+", "c1", "x"), undefined);
    assert.equal(index.add("a/+", "c1", "y"), "x");
    assert.equal(index.size, 1);
    assert.equal(index.get("a/+", "c1"), "y");
    assert.equal(index.get("a/+", "c2"), undefined);
    assert.equal(index.get("a/b", "c1"), undefined);
  });

  test("several keys under one filter, and one key under several filters", () => {
    const index = new TopicIndex<number>();
    index.add("a/b", "c1", 1);
    index.add("a/b", "c2", 2);
    index.add("a/#", "c1", 3);
    index.add("+/b", "g\u0000c1", 4);
    assert.equal(index.size, 4);
    assert.deepEqual(matchedFilters(index, "a/b"), ["+/b|g\u0000c1", "a/#|c1", "a/b|c1", "a/b|c2"]);
    assert.deepEqual(matchedFilters(index, "a"), ["a/#|c1"]);
  });

  test("remove returns the value, ignores unknown entries, and prunes to the bare root", () => {
    const index = new TopicIndex<number>();
    const filters = ["a/b/c", "a/b", "a/+/c", "a/#", "#", "+", "/", "//", "+/+/#", "$SYS/#"];
    filters.forEach((f, i) => index.add(f, "k", i));
    index.add("a/b", "other", 99);
    assert.ok(index.nodeCount > 1);
    assert.equal(index.remove("a/b", "nobody"), undefined);
    assert.equal(index.remove("x/y", "k"), undefined);
    assert.equal(index.remove("a/b/c/d", "k"), undefined);
    assert.equal(index.remove("a/b", "other"), 99);
    assert.equal(index.remove("a/b", "other"), undefined);
    filters.forEach((f, i) => assert.equal(index.remove(f, "k"), i));
    assert.equal(index.size, 0);
    assert.equal(index.nodeCount, 1);
    assert.deepEqual(matchedFilters(index, "a/b"), []);
  });

  test("removing a leaf keeps the still-used ancestors", () => {
    const index = new TopicIndex<number>();
    index.add("a", "k", 1);
    index.add("a/b/c", "k", 2);
    const before = index.nodeCount;
    index.add("a/b/c/d", "k", 3);
    index.remove("a/b/c/d", "k");
    assert.equal(index.nodeCount, before);
    assert.deepEqual(matchedFilters(index, "a/b/c"), ["a/b/c|k"]);
    assert.deepEqual(matchedFilters(index, "a"), ["a|k"]);
  });

  test("an entry whose value is undefined still counts and removes", () => {
    const index = new TopicIndex<undefined>();
    index.add("a", "k", undefined);
    index.add("a", "k", undefined);
    assert.equal(index.size, 1);
    index.remove("a", "k");
    assert.equal(index.size, 0);
    assert.equal(index.nodeCount, 1);
  });
});

/** mulberry32: a tiny seeded PRNG so a failing case reproduces. */
function prng(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const LEVELS = ["a", "b", "", "$x", "$SYS"];

function randomTopic(rand: () => number): string {
  const depth = 1 + Math.floor(rand() * 4);
  const levels: string[] = [];
  for (let i = 0; i < depth; i++) levels.push(LEVELS[Math.floor(rand() * LEVELS.length)]);
  return levels.join("/");
}

function randomFilter(rand: () => number): string {
  const depth = 1 + Math.floor(rand() * 4);
  const levels: string[] = [];
  for (let i = 0; i < depth; i++) {
    const r = rand();
    if (r < 0.25) levels.push("+");
    else if (r < 0.35 && i === depth - 1) levels.push("#");
    else levels.push(LEVELS[Math.floor(rand() * LEVELS.length)]);
  }
  return levels.join("/");
}

describe("seeded random cross-check against topicMatches", () => {
  for (const seed of [1, 2, 3, 42, 1234]) {
    test(`seed ${seed}`, () => {
      const rand = prng(seed);
      const index = new TopicIndex<number>();
      const live = new Map<string, number>(); // "filter|key" → value
      for (let step = 0; step < 1500; step++) {
        const filter = randomFilter(rand);
        const key = `k${Math.floor(rand() * 3)}`;
        const id = `${filter}|${key}`;
        if (rand() < 0.3) {
          assert.equal(index.remove(filter, key), live.get(id));
          live.delete(id);
        } else {
          assert.equal(index.add(filter, key, step), live.get(id));
          live.set(id, step);
        }
        assert.equal(index.size, live.size);
        const topic = randomTopic(rand);
        const expected = [...live.keys()].filter((e) => topicMatches(e.split("|")[0], topic));
        assert.deepEqual(matchedFilters(index, topic), expected.sort(), `topic ${topic}`);
      }
      for (const id of live.keys()) {
        const [filter, key] = id.split("|");
        index.remove(filter, key);
      }
      assert.equal(index.size, 0);
      assert.equal(index.nodeCount, 1);
    });
  }
});

describe("matchAll: the cached answer stays the trie's answer", () => {
  test("a repeated topic returns the remembered array", () => {
    const index = new TopicIndex<string>();
    index.add("a/+", "c1", "v1");
    const first = index.matchAll("a/b");
    assert.deepEqual([...first], ["v1"]);
    assert.equal(index.matchAll("a/b"), first);
  });

  test("add, replace and remove are seen at once", () => {
    const index = new TopicIndex<string>();
    index.add("a/+", "c1", "v1");
    assert.deepEqual([...index.matchAll("a/b")], ["v1"]);
    index.add("a/#", "c2", "v2");
    assert.deepEqual([...index.matchAll("a/b")].sort(), ["v1", "v2"]);
    index.add("a/+", "c1", "v1b"); // a client re-subscribing replaces its entry
    assert.deepEqual([...index.matchAll("a/b")].sort(), ["v1b", "v2"]);
    index.remove("a/#", "c2");
    assert.deepEqual([...index.matchAll("a/b")], ["v1b"]);
    index.remove("a/+", "c1");
    assert.deepEqual([...index.matchAll("a/b")], []);
    // From empty (answered without a lookup) to one subscription again.
    index.add("a/b", "c3", "v3");
    assert.deepEqual([...index.matchAll("a/b")], ["v3"]);
  });

  test("more distinct topics than the cache holds still match exactly", () => {
    const index = new TopicIndex<string>();
    index.add("t/+/x", "c", "v");
    for (let round = 0; round < 2; round++) {
      for (let i = 0; i < MATCH_CACHE_TOPICS + 10; i++) {
        assert.deepEqual([...index.matchAll(`t/${i}/x`)], ["v"]);
        assert.deepEqual([...index.matchAll(`t/${i}/y`)], []);
      }
    }
  });

  test("agrees with match() on the spec examples, and '$' topics stay apart", () => {
    const index = new TopicIndex<number>();
    SPEC.forEach(([filter], i) => index.add(filter, `k${i}`, i));
    for (const [, topic] of SPEC) {
      const walked: number[] = [];
      index.match(topic, (v) => walked.push(v));
      assert.deepEqual([...index.matchAll(topic)].sort(), walked.sort());
      assert.deepEqual([...index.matchAll(topic)].sort(), walked.sort()); // from the cache
    }
  });
});
