/**
 * `rate-limiter.enable` / `rate-limiter.topic-rate-limits`: one token bucket
 * per configured topic filter, shared by every publisher, for QoS 0 publishes
 * (as in the original mqttx). A QoS 0 PUBLISH whose topic matches one or more
 * configured filters passes only if each of their buckets has the tokens; then
 * each pays. Otherwise it is dropped silently (QoS 0 has no acknowledgement).
 * QoS 1/2 publishes, and the will check at CONNECT, neither pay nor wait.
 */
import type { BrokerHooks, ClientInfo } from "../broker/hooks.ts";
import type { MqttxConfig } from "../config/types.ts";
import { type Levels, levels, matchesTopic } from "../acl/filters.ts";
import { TokenBucket } from "./token_bucket.ts";

export type RateLimiterConfig = MqttxConfig["rateLimiter"];

export interface RateLimiterOptions {
  /** Clock in ms (tests). Default Date.now. */
  now?: () => number;
  /** Where drops are also counted (the broker's `stats.dropped`, for /metrics). */
  drops?: { rateLimited: number };
}

export function topicRateLimiter(
  config: RateLimiterConfig,
  opts: RateLimiterOptions = {},
): BrokerHooks & { dropped: number } {
  const limits: { filter: Levels; bucket: TokenBucket }[] = config.topicRateLimits.map((l) => ({
    filter: levels(l.topic),
    bucket: new TokenBucket(l.capacity, l.replenishRate, l.tokenConsumedPerAcquire ?? 1, opts.now),
  }));
  // The broker also asks authorizePublish for the will before CONNACK: only
  // connected clients' publishes pay.
  const connected = new WeakSet<ClientInfo>();
  const matching: TokenBucket[] = [];
  const hooks = {
    dropped: 0,
    onConnected(client: ClientInfo) {
      connected.add(client);
    },
    onDisconnected(client: ClientInfo) {
      connected.delete(client);
    },
    authorizePublish(client: ClientInfo, topic: string, qos: number) {
      if (qos !== 0 || !connected.has(client)) return true;
      const t = levels(topic);
      matching.length = 0;
      for (const l of limits) {
        if (!matchesTopic(l.filter, t)) continue;
        if (!l.bucket.canAcquire()) {
          hooks.dropped++;
          if (opts.drops) opts.drops.rateLimited++;
          return false;
        }
        matching.push(l.bucket);
      }
      for (const b of matching) b.tryAcquire();
      return true;
    },
  };
  return hooks;
}
