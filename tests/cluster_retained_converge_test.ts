/**
 * Two real nodes (one per runtime) over the Redis bus: retained writes of the
 * same topics on both nodes at the same moment, clears mixed in, end with the
 * same retained message on every node and in Redis (the last write Redis
 * ordered).
 */
import { describe, test } from "node:test";
import { useTwoNodes } from "./helpers/cluster.ts";
import { skipWithoutRedis } from "./helpers/redis_server.ts";
import { raceRetainedWrites } from "./helpers/retained_converge.ts";

const skip = skipWithoutRedis();
const { nodes, onA, onB } = useTwoNodes(skip);

describe("cluster (redis bus): concurrent retained writes converge", { skip }, () => {
  test(
    "every node and Redis end with the same retained messages",
    { timeout: 120_000 },
    () => raceRetainedWrites(onA, onB, nodes.redis!.url),
  );
});
