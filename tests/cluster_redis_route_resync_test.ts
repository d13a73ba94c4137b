/**
 * The Redis bus's anti-entropy resync reads every node's route set again and replaces the
 * cached table with it. A route change heard while it reads may be newer than the set it read;
 * the resync must not undo it (a new subscriber's route lost so gets it no message from the
 * other nodes until the next resync, about node-timeout later).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { RedisBus } from "../src/cluster/redis.ts";
import type { BusHandlers, NodeId } from "../src/cluster/types.ts";
import { redisServerForFile } from "./helpers/redis_server.ts";
import { until } from "./helpers/inprocess_node.ts";

const redis = redisServerForFile();

function bus(id: string): RedisBus {
  return new RedisBus({
    url: redis.server().url,
    nodeId: id,
    heartbeatInterval: 100,
    nodeTimeout: 5_000,
    prefix: "route-resync:cluster:",
  });
}

/** Handlers that keep the route table as the bus tells it. */
function tableOf(routes: Map<NodeId, Set<string>>): BusHandlers {
  return {
    message: () => {},
    route: (node, key, present) => {
      const set = routes.get(node) ?? new Set();
      routes.set(node, set);
      if (present) set.add(key);
      else set.delete(key);
    },
    routes: (table) => {
      routes.clear();
      for (const [node, keys] of table) routes.set(node, new Set(keys));
    },
    nodeUp: () => {},
    nodeDown: (node) => void routes.delete(node),
    state: () => {},
  };
}

test("a route change heard while a resync reads the sets survives it", {
  skip: redis.skip,
  timeout: 60_000,
}, async () => {
  const x = bus("x");
  const y = bus("y");
  const seen = new Map<NodeId, Set<string>>();
  try {
    await x.join(tableOf(seen));
    await y.join(tableOf(new Map()));
    y.route("a/1", true);
    await until(() => seen.get("y")?.has("a/1") === true, "a/1 on x");

    // Once x's resync has read y's set, y adds a route, heard by x before the resync ends.
    const cmd = x["cmd"];
    const send = cmd.sendCommand.bind(cmd);
    let interposed = false;
    cmd.sendCommand = (async (args: string[], ...rest: unknown[]) => {
      const reply = await (send as (...a: unknown[]) => Promise<unknown>)(args, ...rest);
      if (!interposed && args[0] === "SMEMBERS" && String(args[1]).endsWith("routes:y")) {
        interposed = true;
        y.route("a/2", true);
        await until(() => seen.get("y")?.has("a/2") === true, "a/2 heard by x");
      }
      return reply;
    }) as typeof cmd.sendCommand;
    await x["resync"]();
    assert.ok(interposed, "the resync read y's routes");
    assert.deepEqual([...seen.get("y") ?? []].sort(), ["a/1", "a/2"]);
  } finally {
    await y.leave();
    await x.leave();
  }
});

test("a node that leaves while a resync reads the sets does not come back with it", {
  skip: redis.skip,
  timeout: 60_000,
}, async () => {
  const x = bus("x");
  const y = bus("y");
  const seen = new Map<NodeId, Set<string>>();
  try {
    await x.join(tableOf(seen));
    await y.join(tableOf(new Map()));
    y.route("b/1", true);
    await until(() => seen.get("y")?.has("b/1") === true, "b/1 on x");

    // While x's resync is under way, y adds a route (logged by the resync), then leaves.
    const cmd = x["cmd"];
    const send = cmd.sendCommand.bind(cmd);
    let interposed = false;
    cmd.sendCommand = (async (args: string[], ...rest: unknown[]) => {
      const reply = await (send as (...a: unknown[]) => Promise<unknown>)(args, ...rest);
      if (!interposed && args[0] === "SMEMBERS" && String(args[1]).endsWith("routes:y")) {
        interposed = true;
        y.route("b/2", true);
        await until(() => seen.get("y")?.has("b/2") === true, "b/2 heard by x");
        await y.leave();
        await until(() => !seen.has("y"), "y gone on x");
      }
      return reply;
    }) as typeof cmd.sendCommand;
    await x["resync"]();
    assert.ok(interposed, "the resync read y's routes");
    // The table read before y left may still name it (read before the leave); its logged change
    // must not be replayed: only what the table had, and gone at the next resync.
    assert.ok(!seen.get("y")?.has("b/2"), "a change of a node gone was replayed");
  } finally {
    await y.leave().catch(() => {});
    await x.leave();
  }
});
