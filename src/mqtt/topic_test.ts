import { describe, test } from "node:test";
import assert from "node:assert/strict";
import {
  isWildcardFilter,
  parseShared,
  topicFilterError,
  topicMatches,
  topicNameError,
} from "./topic.ts";

describe("topicNameError", () => {
  const cases: [string, string | undefined][] = [
    ["sport/tennis/player1", undefined],
    ["Accounts payable", undefined], // spaces are allowed [MQTT-4.7.3]
    ["/", undefined],
    ["/finance", undefined],
    ["$SYS/monitor/Clients", undefined],
    ["a//b", undefined],
    ["", "is empty"], // [MQTT-4.7.3-1]
    ["a/+", "contains a wildcard"], // [MQTT-3.3.2-2]
    ["a/#", "contains a wildcard"],
    ["sport+", "contains a wildcard"],
    ["a\u0000b", "contains U+0000"], // [MQTT-4.7.3-2]
  ];
  for (const [topic, reason] of cases) {
    test(`${JSON.stringify(topic)} → ${reason ?? "valid"}`, () => {
      assert.equal(topicNameError(topic), reason);
    });
  }
});

describe("topicFilterError", () => {
  const valid = [
    "#",
    "+",
    "+/+",
    "/+",
    "sport/#",
    "sport/tennis/player1/#",
    "sport/+/player1",
    "+/tennis/#",
    "$SYS/#",
    "a//b",
    "/",
    "$share", // no "/" after it: an ordinary filter
    "$share/g/#",
    "$share/g/a/+/c",
    "$share/g//",
    "$share/group-1/$SYS/#",
  ];
  const invalid: [string, string][] = [
    ["", "is empty"], // [MQTT-4.7.3-1]
    ["sport/tennis#", "has '#' not alone at the last level"], // [MQTT-4.7.1-2]
    ["sport/tennis/#/ranking", "has '#' not alone at the last level"],
    ["#/a", "has '#' not alone at the last level"],
    ["##", "has '#' not alone at the last level"],
    ["sport+", "has '+' not alone in its level"], // [MQTT-4.7.1-3]
    ["a/+b/c", "has '+' not alone in its level"],
    ["a\u0000", "contains U+0000"],
    ["$share/a+/x", "has a wildcard in its share name"], // [MQTT-4.8.2-1]
    ["$share/a#/x", "has a wildcard in its share name"],
    ["$share//x", "has an empty share name"],
    ["$share/g", "is a shared subscription without a topic filter"], // [MQTT-4.8.2-2]
    ["$share/g/", "is a shared subscription without a topic filter"],
    ["$share/", "is a shared subscription without a topic filter"],
    ["$share/g/a/#/b", "has '#' not alone at the last level"],
  ];
  for (const filter of valid) {
    test(`${JSON.stringify(filter)} is valid`, () =>
      assert.equal(topicFilterError(filter), undefined));
  }
  for (const [filter, reason] of invalid) {
    test(`${JSON.stringify(filter)} → ${reason}`, () =>
      assert.equal(topicFilterError(filter), reason));
  }
});

describe("parseShared", () => {
  test("splits group and filter", () => {
    assert.deepEqual(parseShared("$share/g/a/b"), { group: "g", filter: "a/b" });
    assert.deepEqual(parseShared("$share/g/#"), { group: "g", filter: "#" });
    assert.deepEqual(parseShared("$share/g//x"), { group: "g", filter: "/x" });
  });
  test("returns undefined for non-shared filters", () => {
    assert.equal(parseShared("a/b"), undefined);
    assert.equal(parseShared("$share"), undefined);
    assert.equal(parseShared("$SYS/#"), undefined);
    assert.equal(parseShared("share/g/a"), undefined);
  });
});

test("isWildcardFilter", () => {
  assert.equal(isWildcardFilter("a/+/c"), true);
  assert.equal(isWildcardFilter("#"), true);
  assert.equal(isWildcardFilter("a/b"), false);
  assert.equal(isWildcardFilter("/"), false);
});

// Every example of MQTT 3.1.1 section 4.7 plus edge cases: [filter, topic, matches].
const MATCH_TABLE: [string, string, boolean][] = [
  ["sport/tennis/player1/#", "sport/tennis/player1", true],
  ["sport/tennis/player1/#", "sport/tennis/player1/ranking", true],
  ["sport/tennis/player1/#", "sport/tennis/player1/score/wimbledon", true],
  ["sport/tennis/player1/#", "sport/tennis/player2", false],
  ["sport/#", "sport", true], // [MQTT-4.7.1-2] '#' includes the parent level
  ["#", "sport/tennis", true],
  ["#", "/", true],
  ["sport/tennis/+", "sport/tennis/player1", true],
  ["sport/tennis/+", "sport/tennis/player2", true],
  ["sport/tennis/+", "sport/tennis/player1/ranking", false],
  ["sport/+", "sport", false],
  ["sport/+", "sport/", true], // '+' matches an empty level
  ["+", "sport", true],
  ["+/+", "/finance", true],
  ["/+", "/finance", true],
  ["+", "/finance", false],
  ["+/tennis/#", "sport/tennis/player1", true],
  ["sport/+/player1", "sport/tennis/player1", true],
  ["sport/+/player1", "sport/tennis/player2", false],
  ["#", "$SYS/monitor/Clients", false], // [MQTT-4.7.2-1]
  ["+/monitor/Clients", "$SYS/monitor/Clients", false],
  ["$SYS/#", "$SYS/monitor/Clients", true],
  ["$SYS/#", "$SYS", true],
  ["$SYS/monitor/+", "$SYS/monitor/Clients", true],
  ["a/$b/#", "a/$b/c", true], // the '$' rule applies to the first level only
  ["+/$b", "a/$b", true],
  ["ACCOUNTS", "Accounts", false], // case-sensitive
  ["Accounts payable", "Accounts payable", true],
  ["/finance", "finance", false],
  ["finance", "/finance", false],
  ["a//b", "a//b", true],
  ["a/+/b", "a//b", true],
  ["a/b", "a/b/c", false],
  ["a/b/c", "a/b", false],
];

describe("topicMatches (MQTT 3.1.1 section 4.7 examples)", () => {
  for (const [filter, topic, expected] of MATCH_TABLE) {
    test(`${filter} ${expected ? "matches" : "does not match"} ${topic}`, () => {
      assert.equal(topicMatches(filter, topic), expected);
    });
  }
});
