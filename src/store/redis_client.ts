/**
 * The one way this project makes a Redis client (the store and the cluster bus
 * alike): binary replies as Buffers, no offline queue (a command while Redis is
 * down fails at once instead of piling up), and reconnects backing off from
 * 50 ms to `maxDelayMs` with jitter, so many brokers do not reconnect in step.
 */
import { createClient, RESP_TYPES } from "@redis/client";
import { Buffer } from "node:buffer";

// deno-lint-ignore no-explicit-any
export type RedisClient = any;

export function redisClient(url: string, maxDelayMs: number): RedisClient {
  return createClient({
    url,
    disableOfflineQueue: true,
    socket: {
      connectTimeout: 5_000,
      reconnectStrategy: (retries: number) =>
        Math.min(50 * 2 ** Math.min(retries, 7), maxDelayMs) * (0.75 + Math.random() / 2),
    },
  }).withTypeMapping({ [RESP_TYPES.BLOB_STRING]: Buffer });
}
