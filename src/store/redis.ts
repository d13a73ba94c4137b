/**
 * The Redis store (enable-test-mode: false): persistent sessions and retained
 * messages in Redis (npm `redis`), retained messages also indexed in memory.
 *
 * A session batch is one call of one Lua script (redis_scripts.ts): every
 * change of the batch, and the reference counts of the messages it touched
 * (deleting those that reach zero), applied atomically in one request and one
 * reply. While Redis is unreachable, writes fail at once (no offline
 * queue), so the broker never acknowledges what is not stored; the client
 * reconnects with backoff, and retained changes made meanwhile are written
 * when it is back.
 */
import { redisClient } from "./redis_client.ts";
import { redactUrl } from "../log/redact.ts";
import { Buffer } from "node:buffer";
import { RetainedMemory } from "./retained.ts";
import { ApplyScript, type Command } from "./redis_scripts.ts";
import { bytes, ownBytes, type RedisKeyPrefixes, RedisKeys } from "./redis_codec.ts";
import { decodeMessage, encodeMessageFields } from "./codec.ts";
import type { MessageData, Store } from "./types.ts";
import { RedisSessionStore } from "./redis_sessions.ts";

export interface RedisStoreOptions extends RedisKeyPrefixes {
  /** redis://[user:password@]host:port[/db] or rediss:// */
  url: string;
  /** One line per state change (connected, unreachable). */
  log?: (line: string) => void;
  /** Give up connecting at start after this long (ms). Default 10 s. */
  connectTimeoutMs?: number;
}

// deno-lint-ignore no-explicit-any
type Client = any;

/** Counters for measurement: Redis commands sent and round trips taken by writes. */
export interface RedisStoreStats {
  commands: number;
  roundTrips: number;
}

export class RedisStore implements Store {
  readonly sessions: RedisSessionStore;
  readonly keys: RedisKeys;
  readonly stats: RedisStoreStats = { commands: 0, roundTrips: 0 };
  /** Per store: whether the script is loaded depends on the Redis this client talks to. */
  readonly apply = new ApplyScript();
  private readonly retained = new RetainedMemory();
  /** Retained topics changed while Redis could not take them: written when it is back. */
  private readonly dirtyRetained = new Set<string>();
  /** During resyncRetained(): topics changed here meanwhile, which what it read must not undo. */
  private touched: Set<string> | undefined = undefined;
  /** The retained marker's token when this node last read Redis's retained set. */
  private generation: string | undefined = undefined;
  /** undefined until the first connect or error, so the first state is logged too. */
  private up: boolean | undefined = undefined;
  private closed = false;

  private constructor(readonly client: Client, options: RedisStoreOptions) {
    this.keys = new RedisKeys(options);
    this.sessions = new RedisSessionStore(this);
    const log = options.log ?? (() => {});
    client.on("ready", () => {
      if (!this.up) log(`redis: connected to ${redactUrl(options.url)}`);
      this.up = true;
      this.loadScripts();
      this.catchUp();
    });
    client.on("error", (e: Error) => {
      if (this.up !== false) log(`redis: unreachable (${e.message})`);
      this.up = false;
      this.scriptsLoaded(false); // a restarted Redis has none
    });
  }

  /** Connect (waiting up to `connectTimeoutMs`) and load the retained messages. */
  static async open(options: RedisStoreOptions): Promise<RedisStore> {
    const client = redisClient(options.url, 5_000);
    const store = new RedisStore(client, options);
    const timeout = options.connectTimeoutMs ?? 10_000;
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      await Promise.race([
        client.connect(),
        new Promise((_, reject) => {
          timer = setTimeout(
            () => reject(new Error(`redis: cannot connect to ${redactUrl(options.url)}`)),
            timeout,
          );
        }),
      ]);
      await store.loadRetained();
    } catch (e) {
      store.closed = true;
      client.destroy();
      throw e;
    } finally {
      clearTimeout(timer);
    }
    return store;
  }

  get connected(): boolean {
    return this.up === true;
  }

  // ---- RetainedStore

  setRetained(topic: string, message: MessageData | undefined): Promise<void> {
    const stored = this.retained.set(topic, message);
    this.touched?.add(topic);
    return this.writeRetained(topic, stored).catch((e) => {
      this.dirtyRetained.add(topic);
      throw e;
    });
  }

  matchRetained(filter: string): MessageData[] {
    return this.retained.match(filter, (topic) => {
      this.writeRetained(topic, undefined).catch(() => this.dirtyRetained.add(topic));
    });
  }

  /**
   * Another cluster node stored (or cleared) the retained message of `topic`:
   * update the in-memory index only (src/cluster/node.ts).
   */
  cacheRetained(topic: string, message: MessageData | undefined): void {
    this.retained.set(topic, message);
    this.dirtyRetained.delete(topic);
    this.touched?.add(topic);
  }

  /** The retained message of `topic` in the in-memory index. */
  retainedOf(topic: string): MessageData | undefined {
    return this.retained.index.get(topic);
  }

  /** Write every retained change Redis could not take yet; rejects while it still cannot. */
  async flushRetained(): Promise<void> {
    const topics = [...this.dirtyRetained];
    await Promise.all(topics.map(async (t) => {
      await this.writeRetained(t, this.retained.index.get(t));
      this.dirtyRetained.delete(t);
    }));
  }

  /**
   * Make the in-memory index what Redis holds again (a cluster node back from
   * an outage, while other nodes went on changing retained messages), except
   * `keep` (this node's own changes the others have not heard of), changes not
   * yet written, and changes made while this runs. A Redis that lost its data
   * (no marker; set by the first resync, a cluster node's join) gets this
   * node's whole index written back instead.
   */
  async resyncRetained(keep: ReadonlySet<string>): Promise<void> {
    const touched = this.touched = new Set<string>();
    const mine = (t: string) => keep.has(t) || touched.has(t) || this.dirtyRetained.has(t);
    try {
      const generation = await this.retainedGeneration();
      if (generation === undefined) {
        // The marker goes last: a node resyncing meanwhile sees no marker either and writes
        // its index back too, rather than reading a half-written Redis and deleting the rest.
        const all = [...this.retained.index.entries()];
        for (let i = 0; i < all.length; i += 500) {
          await Promise.all(all.slice(i, i + 500).map(([t, m]) => this.writeRetained(t, m)));
        }
        await this.client.sendCommand([
          "HSETNX",
          this.keys.retainedMarker(),
          "since",
          crypto.randomUUID(),
        ]);
        this.generation = await this.retainedGeneration();
        return;
      }
      const seen = new Set<string>();
      await this.readRetained((topic, m) => {
        seen.add(topic);
        if (!mine(topic)) this.retained.set(topic, m);
      });
      // Another generation: Redis lost its data and another node seeded it again since this
      // node last read it, so what Redis lacks was lost, not cleared: write it back (even a
      // node that started empty and seeded first cannot wipe the others' messages).
      const wiped = generation !== this.generation;
      for (const [topic, m] of [...this.retained.index.entries()]) {
        if (seen.has(topic) || mine(topic)) continue;
        if (wiped) await this.writeRetained(topic, m);
        else this.retained.index.delete(topic);
      }
      this.generation = generation;
    } finally {
      this.touched = undefined;
    }
  }

  retainedCursor(filter: string): Iterator<MessageData> {
    return this.retained.cursor(filter, (topic) => {
      this.writeRetained(topic, undefined).catch(() => this.dirtyRetained.add(topic));
    });
  }

  retainedCount(): number {
    return this.retained.index.size;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.up = false;
    try {
      await this.client.close();
    } catch {
      this.client.destroy();
    }
  }

  // ---- internals shared with RedisSessionStore

  /**
   * Apply commands atomically, in order, as one script call: one request, one
   * reply (the client ids a `@fence` refused).
   */
  async exec(commands: Command[], payloads?: Buffer): Promise<string[]> {
    if (commands.length === 0) return [];
    this.stats.commands += commands.length;
    this.stats.roundTrips++;
    const fenced = await this.client.sendCommand(this.apply.call(commands, payloads)) as
      | Buffer[]
      | number;
    return Array.isArray(fenced) ? fenced.map((b) => b.toString()) : [];
  }

  /** Run read commands concurrently (pipelined by the client). */
  read(commands: Command[]): Promise<unknown[]> {
    return Promise.all(commands.map((c) => this.client.sendCommand(c)));
  }

  /** Every key matching `pattern` (SCAN, never KEYS). */
  async scan(pattern: string): Promise<string[]> {
    const keys: string[] = [];
    let cursor = "0";
    do {
      const [next, found] = await this.client.sendCommand([
        "SCAN",
        cursor,
        "MATCH",
        pattern,
        "COUNT",
        "1000",
      ]) as [Buffer, Buffer[]];
      cursor = next.toString();
      for (const k of found) keys.push(k.toString());
    } while (cursor !== "0");
    return keys;
  }

  private async writeRetained(topic: string, message: MessageData | undefined): Promise<void> {
    const key = this.keys.retained(topic);
    if (!message) return void await this.exec([["DEL", key]]);
    await this.exec([
      ["DEL", key],
      ["HSET", key, "m", encodeMessageFields(message), "p", bytes(message.payload)],
    ]);
  }

  private async loadRetained(): Promise<void> {
    this.generation = await this.retainedGeneration();
    await this.readRetained((topic, m) => this.retained.set(topic, m));
  }

  /** Every retained message in Redis, to `each`. */
  private async readRetained(each: (topic: string, m: MessageData) => void): Promise<void> {
    const keys = await this.scan(this.keys.retainedPattern());
    for (let i = 0; i < keys.length; i += 500) {
      const chunk = keys.slice(i, i + 500);
      const hashes = await this.read(chunk.map((k) => ["HGETALL", k])) as Record<string, Buffer>[];
      hashes.forEach((h, j) => {
        if (h.m === undefined) return; // the marker
        each(this.keys.topicOf(chunk[j]), decodeMessage(h.m.toString(), ownBytes(h.p)));
      });
    }
  }

  /** Whether the marker is there (false: a new or emptied Redis). */
  /**
   * The marker's token, new each time a node seeds an empty Redis with its
   * index (so a changed token says Redis lost its data meanwhile); undefined
   * without a marker.
   */
  private async retainedGeneration(): Promise<string | undefined> {
    const r = await this.client.sendCommand(["HGET", this.keys.retainedMarker(), "since"]);
    return r == null ? undefined : String(r);
  }

  /** Let writes call the script by SHA once this connection's Redis has it. */
  private loadScripts(): void {
    this.client.sendCommand(["SCRIPT", "LOAD", this.apply.text])
      .then(() => this.scriptsLoaded(true), () => {});
  }

  private scriptsLoaded(loaded: boolean): void {
    this.apply.loaded = loaded;
  }

  private catchUp(): void {
    if (this.dirtyRetained.size === 0) return;
    const topics = [...this.dirtyRetained];
    this.dirtyRetained.clear();
    for (const t of topics) {
      this.writeRetained(t, this.retained.index.get(t)).catch(() => this.dirtyRetained.add(t));
    }
  }
}
