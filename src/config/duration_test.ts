import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { parseDuration } from "./duration.ts";

describe("parseDuration", () => {
  const good: [string | number, number][] = [
    ["500ms", 500],
    ["60s", 60_000],
    ["5m", 300_000],
    ["1h", 3_600_000],
    ["1d", 86_400_000],
    ["60S", 60_000],
    ["10 s", 10_000],
    [" 7s ", 7_000],
    [60, 60_000],
    ["60", 60_000],
    [0, 0],
    ["PT60S", 60_000],
    ["pt1m30s", 90_000],
    ["PT1H", 3_600_000],
    ["P1D", 86_400_000],
    ["P1DT2H", 93_600_000],
    ["PT0.5S", 500],
  ];
  for (const [input, ms] of good) {
    test(`${JSON.stringify(input)} is ${ms} ms`, () => {
      assert.equal(parseDuration(input), ms);
    });
  }

  const bad: (string | number)[] = [
    "60x",
    "",
    "s",
    "-5s",
    "1.5s",
    "P",
    "PT",
    "PT5",
    "5 minutes",
    -1,
    1.5,
  ];
  for (const input of bad) {
    test(`${JSON.stringify(input)} is refused`, () => {
      assert.throws(() => parseDuration(input), (e: Error) => {
        assert.ok(e instanceof RangeError);
        assert.match(e.message, /expected a duration/);
        assert.ok(e.message.includes(JSON.stringify(input)), e.message);
        return true;
      });
    });
  }
});
