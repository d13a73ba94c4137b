import { test } from "node:test";
import assert from "node:assert/strict";
import { decodeTopicName } from "./topic_names.ts";

const bytes = (s: string) => new TextEncoder().encode(s);

test("a repeated topic name decodes to the same string, from any buffer position", () => {
  const a = bytes("xxsensors/1/temp");
  const b = bytes("sensors/1/temp");
  assert.equal(decodeTopicName(a, 2, a.length), "sensors/1/temp");
  assert.equal(decodeTopicName(b, 0, b.length), "sensors/1/temp");
});

test("many topics sharing the table's slots each decode to their own name", () => {
  for (let round = 0; round < 2; round++) {
    for (let i = 0; i < 5000; i++) {
      const name = `dev/${i}/t`;
      const b = bytes(name);
      assert.equal(decodeTopicName(b, 0, b.length), name);
    }
  }
});

test("a remembered name is not returned for other bytes of the same length", () => {
  const good = bytes("a/bc");
  assert.equal(decodeTopicName(good, 0, good.length), "a/bc");
  const other = bytes("a/bd");
  assert.equal(decodeTopicName(other, 0, other.length), "a/bd");
  good[3] = 0; // U+0000 is not allowed [MQTT-1.5.4-2]
  assert.equal(decodeTopicName(good, 0, good.length), undefined);
});

test("invalid UTF-8 and non-ASCII names behave as decodeUtf8", () => {
  const bad = new Uint8Array([0x61, 0xc3]); // truncated sequence
  assert.equal(decodeTopicName(bad, 0, 2), undefined);
  assert.equal(decodeTopicName(bad, 0, 2), undefined); // not remembered
  const uni = bytes("température/é");
  assert.equal(decodeTopicName(uni, 0, uni.length), "température/é");
  assert.equal(decodeTopicName(uni, 0, uni.length), "température/é");
  const long = bytes("l/".repeat(100));
  assert.equal(decodeTopicName(long, 0, long.length), "l/".repeat(100));
});

test("a name with a wildcard character is null, every time, short or long", () => {
  for (const name of ["a/+", "a/#", "sport+", "#", "l/".repeat(100) + "+"]) {
    const b = bytes(name);
    assert.equal(decodeTopicName(b, 0, b.length), null, name);
    assert.equal(decodeTopicName(b, 0, b.length), null, name); // not remembered
  }
  // Invalid UTF-8 is reported as such even with a wildcard in it.
  assert.equal(decodeTopicName(new Uint8Array([0x2b, 0xc3]), 0, 2), undefined);
});
