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

/**
 * Nodes x and y, y with route `first` known to x; then x's resync runs, and `meanwhile` runs
 * once it has read y's set (before the resync applies it). Returns what x holds after it.
 */
async function resyncWith(
  first: string,
  meanwhile: (y: RedisBus, seen: Map<NodeId, Set<string>>) => Promise<void>,
): Promise<Map<NodeId, Set<string>>> {
  const x = bus("x");
  const y = bus("y");
  const seen = new Map<NodeId, Set<string>>();
  try {
    await x.join(tableOf(seen));
    await y.join(tableOf(new Map()));
    y.route(first, true);
    await until(() => seen.get("y")?.has(first) === true, `${first} on x`);
    const cmd = x["cmd"];
    const send = cmd.sendCommand.bind(cmd);
    let interposed = false;
    cmd.sendCommand = (async (args: string[], ...rest: unknown[]) => {
      const reply = await (send as (...a: unknown[]) => Promise<unknown>)(args, ...rest);
      if (!interposed && args[0] === "SMEMBERS" && String(args[1]).endsWith("routes:y")) {
        interposed = true;
        await meanwhile(y, seen);
      }
      return reply;
    }) as typeof cmd.sendCommand;
    await x["resync"]();
    assert.ok(interposed, "the resync read y's routes");
    return new Map([...seen].map(([node, keys]) => [node, new Set(keys)])); // before y leaves
  } finally {
    await y.leave().catch(() => {});
    await x.leave();
  }
}

test("a route change heard while a resync reads the sets survives it", {
  skip: redis.skip,
  timeout: 60_000,
}, async () => {
  const seen = await resyncWith("a/1", async (y, seen) => {
    y.route("a/2", true);
    await until(() => seen.get("y")?.has("a/2") === true, "a/2 heard by x");
  });
  assert.deepEqual([...seen.get("y") ?? []].sort(), ["a/1", "a/2"]);
});

test("a node that leaves while a resync reads the sets does not come back with it", {
  skip: redis.skip,
  timeout: 60_000,
}, async () => {
  // y adds a route (logged by the resync), then leaves.
  const seen = await resyncWith("b/1", async (y, seen) => {
    y.route("b/2", true);
    await until(() => seen.get("y")?.has("b/2") === true, "b/2 heard by x");
    await y.leave();
    await until(() => !seen.has("y"), "y gone on x");
  });
  // The table read before y left may still name it; its logged change must not be replayed.
  assert.ok(!seen.get("y")?.has("b/2"), "a change of a node gone was replayed");
});
