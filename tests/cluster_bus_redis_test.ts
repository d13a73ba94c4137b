/** The ClusterBus contract (src/cluster/contract.ts) against the Redis bus and a real redis-server. */
import { after, before } from "node:test";
import {
  CONTRACT_HEARTBEAT_MS,
  CONTRACT_NODE_TIMEOUT_MS,
  runBusContract,
} from "../src/cluster/contract.ts";
import { RedisBus } from "../src/cluster/redis.ts";
import type { ClusterBus } from "../src/cluster/types.ts";
import { RedisServer, skipWithoutRedis } from "./helpers/redis_server.ts";

const skip = skipWithoutRedis();
let server: RedisServer | undefined;
let cluster = 0;

before(async () => {
  if (!skip) server = await RedisServer.start();
});

after(async () => {
  await server?.dispose();
});

runBusContract("redis", {
  skip,
  backend: () => {
    // Each test its own key and channel prefix: its own cluster on the one server.
    const prefix = `test${++cluster}:cluster:`;
    const buses: RedisBus[] = [];
    return Promise.resolve({
      bus: (id: string): ClusterBus => {
        const bus = new RedisBus({
          url: server!.url,
          nodeId: id,
          heartbeatInterval: CONTRACT_HEARTBEAT_MS,
          nodeTimeout: CONTRACT_NODE_TIMEOUT_MS,
          prefix,
        });
        buses.push(bus);
        return bus;
      },
      crash: (bus: ClusterBus) => Promise.resolve((bus as RedisBus).abandon()),
      dispose: async () => {
        for (const b of buses) await b.leave().catch(() => {});
      },
    });
  },
});
