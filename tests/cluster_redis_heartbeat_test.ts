/**
 * A node's heartbeats never pile up: while Redis is slow to answer one, the next waits for it
 * instead of sending another. Before, each tick sent its own, so a Redis that stalled for a
 * second got ten heartbeats (each with its liveness check, PUBLISH and peer checks) from every
 * node at once when it came back, and a node declared dead meanwhile rejoined twice.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { createClient } from "redis";
import { RedisBus } from "../src/cluster/redis.ts";
import type { BusHandlers } from "../src/cluster/types.ts";
import { redisWithAdminForFile } from "./helpers/redis_server.ts";
import { until } from "./helpers/inprocess_node.ts";

const redis = redisWithAdminForFile();
const PREFIX = "heartbeat:cluster:";

const handlers: BusHandlers = {
  message: () => {},
  route: () => {},
  routes: () => {},
  nodeUp: () => {},
  nodeDown: () => {},
  state: () => {},
};

test(
  "heartbeats wait for each other while Redis stalls",
  { skip: redis.skip, timeout: 30_000 },
  async () => {
    const x = new RedisBus({
      url: redis.server().url,
      nodeId: "x",
      heartbeatInterval: 100,
      nodeTimeout: 5_000,
      prefix: PREFIX,
    });
    const listener = createClient({ url: redis.server().url });
    const beats: number[] = [];
    try {
      await x.join(handlers);
      await listener.connect();
      await listener.subscribe(PREFIX + "chan:ctl", (raw: string) => {
        const m = JSON.parse(raw);
        if (m.n === "x" && m.x === "hb") beats.push(Date.now());
      });
      await until(() => beats.length >= 2, "heartbeats heard");
      // Writes (EVAL, PUBLISH) wait for a second: ten ticks of the heartbeat pass meanwhile.
      await redis.admin().client.sendCommand(["CLIENT", "PAUSE", "1000", "WRITE"]);
      const paused = Date.now();
      await until(() => beats.some((t) => t > paused + 900), "heartbeats after the stall", 5_000);
      const first = beats.find((t) => t > paused + 900)!;
      await new Promise((r) => setTimeout(r, 300));
      const burst = beats.filter((t) => t >= first && t < first + 60).length;
      assert.ok(
        burst <= 2,
        `${burst} heartbeats within 60 ms after the stall (one at a time: <= 2)`,
      );
    } finally {
      await listener.quit().catch(() => {});
      await x.leave();
    }
  },
);
