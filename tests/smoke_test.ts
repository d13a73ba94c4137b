import { test } from "node:test";
import assert from "node:assert/strict";
import { parse } from "yaml";
import mqtt from "mqtt";
import * as net from "node:net";

test("yaml + mqtt import", () => {
  assert.deepEqual(parse("a: 1"), { a: 1 });
  assert.equal(typeof mqtt.connect, "function");
  assert.equal(typeof net.createServer, "function");
});
