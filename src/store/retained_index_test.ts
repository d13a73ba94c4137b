import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { RetainedIndex } from "./retained_index.ts";
import { topicMatches } from "../mqtt/topic.ts";

function matched(index: RetainedIndex<number>, filter: string): string[] {
  const out: string[] = [];
  index.match(filter, (topic, value) => out.push(`${topic}=${value}`));
  return out.sort();
}

const TOPICS = [
  "sport",
  "sport/",
  "sport/tennis/player1",
  "sport/tennis/player1/ranking",
  "sport/tennis/player1/score/wimbledon",
  "sport/tennis/player2",
  "/finance",
  "finance",
  "$SYS/monitor/Clients",
  "$SYS",
  "Accounts",
];

describe("RetainedIndex.match over the spec section 4.7 topics", () => {
  const index = new RetainedIndex<number>();
  TOPICS.forEach((t, i) => index.set(t, i));
  const filters = [
    "sport/tennis/player1/#",
    "sport/#",
    "sport/tennis/+",
    "sport/+",
    "+",
    "+/+",
    "/+",
    "#",
    "+/monitor/Clients",
    "$SYS/#",
    "$SYS/monitor/+",
    "ACCOUNTS",
    "Accounts",
    "/finance",
    "sport/tennis/player1",
    "nothing/here",
  ];
  for (const filter of filters) {
    test(filter, () => {
      const expected = TOPICS.flatMap((t, i) => topicMatches(filter, t) ? [`${t}=${i}`] : []);
      assert.deepEqual(matched(index, filter), expected.sort());
    });
  }

  test("'#' skips '$' topics and '$SYS/#' finds them", () => {
    assert.ok(!matched(index, "#").some((e) => e.startsWith("$")));
    assert.deepEqual(matched(index, "$SYS/#"), ["$SYS/monitor/Clients=8", "$SYS=9"].sort());
  });
});

describe("RetainedIndex set/get/delete", () => {
  test("set replaces, get reads, entries lists", () => {
    const index = new RetainedIndex<string>();
    index.set("a/b", "1");
    index.set("a/b", "2");
    index.set("a", "3");
    assert.equal(index.size, 2);
    assert.equal(index.get("a/b"), "2");
    assert.equal(index.get("a/c"), undefined);
    assert.deepEqual([...index.entries()].sort(), [["a", "3"], ["a/b", "2"]]);
  });

  test("delete reports presence and prunes to the bare root", () => {
    const index = new RetainedIndex<number>();
    const topics = ["a", "a/b/c", "a/b", "/", "//", "$SYS/x", "a//b"];
    topics.forEach((t, i) => index.set(t, i));
    assert.equal(index.delete("a/b/c/d"), false);
    assert.equal(index.delete("nope"), false);
    for (const t of topics) assert.equal(index.delete(t), true);
    assert.equal(index.delete("a"), false);
    assert.equal(index.size, 0);
    assert.equal(index.nodeCount, 1);
    assert.deepEqual(matched(index, "#"), []);
  });

  test("deleting a parent keeps its children reachable", () => {
    const index = new RetainedIndex<number>();
    index.set("a", 1);
    index.set("a/b", 2);
    index.delete("a");
    assert.deepEqual(matched(index, "a/#"), ["a/b=2"]);
    assert.deepEqual(matched(index, "+/+"), ["a/b=2"]);
  });
});

function prng(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const LEVELS = ["a", "b", "", "$x", "$SYS"];

function randomLevels(rand: () => number, wildcards: boolean): string {
  const depth = 1 + Math.floor(rand() * 4);
  const levels: string[] = [];
  for (let i = 0; i < depth; i++) {
    const r = rand();
    if (wildcards && r < 0.25) levels.push("+");
    else if (wildcards && r < 0.35 && i === depth - 1) levels.push("#");
    else levels.push(LEVELS[Math.floor(rand() * LEVELS.length)]);
  }
  return levels.join("/");
}

describe("seeded random cross-check against topicMatches", () => {
  for (const seed of [7, 8, 99, 2024]) {
    test(`seed ${seed}`, () => {
      const rand = prng(seed);
      const index = new RetainedIndex<number>();
      const live = new Map<string, number>();
      for (let step = 0; step < 1500; step++) {
        const topic = randomLevels(rand, false);
        if (rand() < 0.3) {
          assert.equal(index.delete(topic), live.delete(topic));
        } else {
          index.set(topic, step);
          live.set(topic, step);
        }
        assert.equal(index.size, live.size);
        const filter = randomLevels(rand, true);
        const expected = [...live].flatMap(([t, v]) =>
          topicMatches(filter, t) ? [`${t}=${v}`] : []
        );
        assert.deepEqual(matched(index, filter), expected.sort(), `filter ${filter}`);
      }
      for (const topic of live.keys()) index.delete(topic);
      assert.equal(index.nodeCount, 1);
    });
  }
});
