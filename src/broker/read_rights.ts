/**
 * Read rights checked where messages go out, not only at SUBSCRIBE: a resumed
 * session, a wildcard subscription or a reused client id never receives a topic
 * its user may not read (as Mosquitto checks "read" access per delivery).
 *
 * The question is the hooks' `authorizeSubscribe`, asked with the topic name as
 * the filter (`$share/{group}/{topic}` for a shared subscription's delivery):
 * a filter that is a topic name covers exactly that topic. The answers are kept
 * per connection and topic, so the cost per delivery is one Map lookup, and
 * nothing at all while no hook decides subscribe rights.
 */
import type { QoS } from "../mqtt/packet.ts";
import type { Connection } from "./connection.ts";
import type { BrokerHooks, ClientInfo } from "./hooks.ts";

/** Answers kept per connection before the cache starts over (bounded memory). */
const CACHE_LIMIT = 4096;

type Check = (client: ClientInfo, filter: string, qos: QoS) => boolean;

/**
 * One connection's answers: by topic, and by share group key then topic.
 * Each value holds bits per QoS (a hook may answer by QoS): 1 << qos for
 * "allowed", 8 << qos for "refused"; neither means not asked yet.
 */
export interface ReadRightsCache {
  plain: Map<string, number>;
  shared: Map<string, Map<string, number>> | undefined;
  /** The last plain answer: a connection often gets one topic many times in a row. */
  lastTopic: string | undefined;
  lastQos: QoS;
  lastOk: boolean;
}

export class ReadRights {
  private checks: Check[] = [];
  /** hooks.length when `checks` was built (plugins fill the array after the broker exists). */
  private seen = -1;

  constructor(private readonly hooks: readonly BrokerHooks[]) {}

  /** True when no hook decides subscribe rights (then every delivery is allowed). */
  get open(): boolean {
    if (this.hooks.length !== this.seen) this.refresh();
    return this.checks.length === 0;
  }

  /** May `conn`'s client receive `topic` at `qos` (through shared group key `share`, "group\0filter")? */
  allows(conn: Connection, topic: string, qos: QoS, share: string | undefined): boolean {
    if (this.open) return true;
    const client = conn.client;
    if (!client) return false;
    const cached = conn.readRights ??= {
      plain: new Map(),
      shared: undefined,
      lastTopic: undefined,
      lastQos: 0,
      lastOk: false,
    };
    if (share === undefined && cached.lastTopic === topic && cached.lastQos === qos) {
      return cached.lastOk;
    }
    let cache = cached.plain;
    if (share !== undefined) {
      const shared = cached.shared ??= new Map();
      cache = shared.get(share) ?? new Map();
      if (cache.size === 0) shared.set(share, cache);
    }
    const bits = cache.get(topic) ?? 0;
    let ok: boolean;
    if (bits & (1 << qos)) ok = true;
    else if (bits & (8 << qos)) ok = false;
    else {
      ok = this.ask(client, topic, qos, share);
      if (cache.size >= CACHE_LIMIT) cache.clear();
      cache.set(topic, bits | (ok ? 1 << qos : 8 << qos));
    }
    if (share === undefined) {
      cached.lastTopic = topic;
      cached.lastQos = qos;
      cached.lastOk = ok;
    }
    return ok;
  }

  /** The hooks' answer, uncached. */
  private ask(client: ClientInfo, topic: string, qos: QoS, share: string | undefined): boolean {
    const filter = share === undefined
      ? topic
      : `$share/${share.slice(0, share.indexOf("\0"))}/${topic}`;
    for (const check of this.checks) {
      if (!check(client, filter, qos)) return false;
    }
    return true;
  }

  private refresh(): void {
    this.seen = this.hooks.length;
    this.checks = [];
    for (const h of this.hooks) {
      if (h.authorizeSubscribe) this.checks.push(h.authorizeSubscribe.bind(h));
    }
  }
}
