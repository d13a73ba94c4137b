/**
 * The Redis store keeps a bridge's queue too: mqttx (a real process) on the
 * Redis store, its upstream (a real Mosquitto) down, bridged messages
 * acknowledged locally, kill -9, restart, upstream back: every message
 * arrives upstream, in order per QoS (tests/helpers/bridge_kill.ts; the same
 * scenario on SQLite is in tests/store_sqlite_crash_test.ts).
 */
import { after, afterEach, before, describe, test } from "node:test";
import { mustRun } from "./helpers/harness.ts";
import type { BrokerProcess } from "./helpers/broker_process.ts";
import { bridgeQueueSurvivesKill } from "./helpers/bridge_kill.ts";
import { RedisServer, skipWithoutRedis } from "./helpers/redis_server.ts";
import { mosquittoAvailable, startUpstream, type Upstream } from "./helpers/upstream_mosquitto.ts";

const skip = skipWithoutRedis() ||
  (!mosquittoAvailable() && !mustRun() ? "mosquitto not on PATH" : false);

let redis: RedisServer | undefined;
let mqttx: BrokerProcess | undefined;
let upstream: Upstream | undefined;

before(async () => {
  if (!skip) redis = await RedisServer.start();
});
afterEach(async () => {
  await mqttx?.dispose();
  mqttx = undefined;
  await upstream?.remove();
  upstream = undefined;
});
after(async () => {
  await redis?.dispose();
});

describe("Redis store: a bridge's queue across kill -9", () => {
  test("queued while the upstream is down, delivered after the restart", {
    skip,
    timeout: 120_000,
  }, async () => {
    upstream = await startUpstream();
    await bridgeQueueSurvivesKill(
      upstream,
      `store:\n  type: redis\nredis:\n  url: ${redis!.url}\n`,
      (b) => (mqttx = b),
    );
  });
});
