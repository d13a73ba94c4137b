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
import { RetainedVersions } from "./retained_versions.ts";
import { ApplyScript, type Command, RetainScript, UnretainScript } from "./redis_scripts.ts";
import { bytes, ownBytes, type RedisKeyPrefixes, RedisKeys } from "./redis_codec.ts";
import { decodeMessage, encodeMessageFields } from "./codec.ts";
import type { BatchRider, MessageData, Store } from "./types.ts";
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

/** How often a connected Redis is asked whether it answers, and how long it may take. */
const PROBE_MS = 2_000;
const STALL_MS = 3_000;
const ABANDON_MS = 10_000;
/** How long close() waits for Redis to answer what is pending before it cuts the connection. */
const CLOSE_MS = 2_000;

export class RedisStore implements Store {
  readonly sessions: RedisSessionStore;
  readonly keys: RedisKeys;
  readonly stats: RedisStoreStats = { commands: 0, roundTrips: 0 };
  /** Per store: whether the script is loaded depends on the Redis this client talks to. */
  readonly apply = new ApplyScript();
  private readonly retain = new RetainScript();
  private readonly unretain = new UnretainScript();
  /** The retained index, each change taken in the order Redis gave it (retained_versions.ts). */
  private readonly retained = new RetainedVersions();
  /**
   * Retained topics changed here while Redis could not take them, with no write under way:
   * written when it is back.
   */
  private readonly dirtyRetained = new Set<string>();
  /** The retained marker's token when this node last read Redis's retained set. */
  private generation: string | undefined = undefined;
  /** undefined until the first connect or error, so the first state is logged too. */
  private up: boolean | undefined = undefined;
  private closed = false;
  /**
   * A Redis that holds its connections but answers nothing (stopped, swapping, a blocked
   * script) raises no error: a PING every PROBE_MS that is not answered within STALL_MS marks it
   * not answering (/health, `connected`) until a reply comes.
   */
  private stalled = false;
  /** When the PING waiting for its answer was sent (0: none). */
  private probeSince = 0;
  /** Set once open() succeeded: a store that failed to open leaves no timer behind. */
  private probe: ReturnType<typeof setInterval> | undefined;
  private readonly log: (line: string) => void;

  private constructor(readonly client: Client, options: RedisStoreOptions) {
    this.keys = new RedisKeys(options);
    this.sessions = new RedisSessionStore(this);
    const log = this.log = options.log ?? (() => {});
    client.on("ready", () => {
      if (!this.up) log(`redis: connected to ${redactUrl(options.url)}`);
      this.up = true;
      this.answered(); // a new connection's handshake was answered
      this.loadScripts();
      this.catchUp();
    });
    client.on("error", (e: Error) => {
      if (this.up !== false) log(`redis: unreachable (${e.message})`);
      this.up = false;
      this.stalled = false; // unreachable says it now (until ready again)
      this.probeSince = 0;
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
      store.probe = setInterval(() => store.ping(), PROBE_MS);
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
    return this.up === true && !this.stalled;
  }

  /** Whether Redis answers at all, not only holds the connection (see `stalled`). */
  get answering(): boolean {
    return !this.stalled;
  }

  /**
   * Every PROBE_MS: a PING unanswered for STALL_MS marks Redis not answering until one is
   * answered (or the client reconnects); one unanswered for ABANDON_MS is given up for a new
   * one (a client may never settle a command sent on a connection that hung).
   */
  private async ping(): Promise<void> {
    if (this.closed || !this.up) return;
    const now = Date.now();
    if (this.probeSince !== 0) {
      if (!this.stalled && now - this.probeSince >= STALL_MS) {
        this.stalled = true;
        this.log(`redis: not answering (no reply to PING within ${STALL_MS / 1000} s)`);
      }
      if (now - this.probeSince < ABANDON_MS) return;
    }
    const since = this.probeSince = now;
    try {
      await this.client.ping();
      if (this.probeSince === since) this.answered();
    } catch {
      // An error is the client's "error" event's to report.
    } finally {
      if (this.probeSince === since) this.probeSince = 0;
    }
  }

  private answered(): void {
    if (this.stalled) this.log("redis: answering again");
    this.stalled = false;
    this.probeSince = 0;
  }

  // ---- RetainedStore

  /** Resolves to the version Redis gave the change (retained_versions.ts). */
  setRetained(
    topic: string,
    message: MessageData | undefined,
    rider?: BatchRider,
  ): Promise<number | undefined> {
    this.retained.local(topic, message);
    return this.writeRetained(topic, rider);
  }

  matchRetained(filter: string): MessageData[] {
    return this.retained.memory.match(filter, (topic) => this.expireRetained(topic));
  }

  /**
   * Another cluster node stored (or cleared) the retained message of `topic`
   * as `version` (undefined: not ordered by Redis): update the in-memory index
   * only, if newer than what it holds (src/cluster/node.ts).
   */
  cacheRetained(topic: string, message: MessageData | undefined, version?: number): void {
    if (version === undefined) return this.retained.unordered(topic, message);
    if (!this.retained.heard(topic, version, message)) return void this.refreshRetained(topic);
    // A change here that Redis never took (and no write of it under way) gives way to one it took.
    if (this.dirtyRetained.delete(topic)) this.retained.abandon(topic);
  }

  /** The retained message of `topic` in the in-memory index. */
  retainedOf(topic: string): MessageData | undefined {
    return this.retained.memory.index.get(topic);
  }

  /** The retained change of `topic` Redis holds as far as this node knows, with its version. */
  retainedHeld(topic: string): { version: number; message: MessageData | undefined } | undefined {
    return this.retained.held(topic);
  }

  /** Write every retained change Redis could not take yet; rejects while it still cannot. */
  async flushRetained(): Promise<void> {
    await Promise.all([...this.dirtyRetained].map((t) => this.writeRetained(t)));
  }

  /**
   * Make the in-memory index what Redis holds again (a cluster node back from
   * an outage, while other nodes went on changing retained messages), but for
   * changes of this node not yet answered. What this node changed or took
   * while this runs is kept against an older version read. The node's own
   * changes made during the outage are in Redis by now (flushRetained), so
   * what Redis holds is theirs or newer: taken, as on every other node (an
   * announcement of the newer one may have been sent before this node
   * listened again). A Redis that lost its data (no marker; set by the first
   * resync, a cluster node's join) gets this node's whole index written back
   * instead. Returns the topics written back (the other nodes must hear of
   * them: another node's write-back of one may have come first, and Redis
   * holds this one).
   */
  async resyncRetained(): Promise<string[]> {
    const changed = this.retained.track();
    const mine = (t: string) => changed.has(t) || this.dirtyRetained.has(t);
    try {
      const generation = await this.retainedGeneration();
      if (generation === undefined) {
        // The marker goes last: a node resyncing meanwhile sees no marker either and writes
        // its index back too, rather than reading a half-written Redis and deleting the rest.
        const all = [...this.retained.memory.index.entries()];
        for (let i = 0; i < all.length; i += 500) {
          await Promise.all(all.slice(i, i + 500).map(([t, m]) => this.rewriteRetained(t, m)));
        }
        const rewritten = all.map(([t]) => t);
        await this.client.sendCommand([
          "HSETNX",
          this.keys.retainedMarker(),
          "since",
          crypto.randomUUID(),
        ]);
        this.generation = await this.retainedGeneration();
        return rewritten;
      }
      // Another generation: Redis lost its data and another node seeded it again since this
      // node last read it, so what Redis lacks was lost, not cleared: write it back (even a
      // node that started empty and seeded first cannot wipe the others' messages), and what
      // it holds is taken whatever its version (versions held here may predate the loss), but
      // against a change set here meanwhile: its version is of this generation.
      const wiped = generation !== this.generation;
      // Read before the topics: a topic missing below was cleared at this version or earlier.
      const counter = await this.retainedCounter();
      const seen = new Set<string>();
      const rewritten: string[] = [];
      await this.readRetained((topic, m, version) => {
        seen.add(topic);
        // Changed or taken here meanwhile: kept against an older version, or one without any.
        if (!mine(topic)) this.retained.fromRedis(topic, version, m, wiped);
        else if (this.retained.held(topic)) this.retained.fromRedis(topic, version, m);
      });
      for (const [topic, m] of [...this.retained.memory.index.entries()]) {
        if (seen.has(topic) || mine(topic)) continue;
        if (wiped) {
          await this.rewriteRetained(topic, m);
          rewritten.push(topic);
        } else this.retained.fromRedis(topic, counter, undefined);
      }
      this.generation = generation;
      return rewritten;
    } finally {
      this.retained.untrack();
    }
  }

  retainedCursor(filter: string): Iterator<MessageData> {
    return this.retained.memory.cursor(filter, (topic) => this.expireRetained(topic));
  }

  retainedCount(): number {
    return this.retained.memory.index.size;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.up = false;
    clearInterval(this.probe);
    // close() waits for every pending reply: a Redis that answers nothing would hold it for ever.
    if (this.stalled || this.probeSince !== 0) return this.client.destroy();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const late = new Promise<"late">((r) => (timer = setTimeout(() => r("late"), CLOSE_MS)));
    try {
      if (await Promise.race([this.client.close(), late]) === "late") this.client.destroy();
    } catch {
      this.client.destroy();
    } finally {
      clearTimeout(timer);
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

  /**
   * Write this node's last change of `topic` that Redis has not taken (none:
   * nothing to do); resolves to the version Redis gave it. `rider`: run in the
   * same script (both or neither; a rewrite after a failure goes without it).
   */
  private async writeRetained(topic: string, rider?: BatchRider): Promise<number | undefined> {
    this.dirtyRetained.delete(topic);
    const change = this.retained.unwritten(topic);
    if (!change) return undefined;
    const { seq, message } = change;
    this.stats.commands++;
    this.stats.roundTrips++;
    try {
      const version = Number(
        await this.client.sendCommand(this.retain.call(
          this.keys.retainedVersions(),
          this.retained.newest,
          this.keys.retained(topic),
          message ? encodeMessageFields(message) : "",
          message ? bytes(message.payload) : NO_PAYLOAD,
          rider?.redis,
        )),
      );
      if (rider?.redis) rider.applied = true;
      this.retained.written(topic, seq, version);
      return version;
    } catch (e) {
      // Written again when Redis is back, unless a later change here is on its way by then.
      if (this.retained.unwritten(topic)?.seq === seq) this.dirtyRetained.add(topic);
      throw e;
    }
  }

  /** Write `message` to Redis again as a change made here (Redis lost it). */
  private rewriteRetained(topic: string, message: MessageData): Promise<number | undefined> {
    this.retained.local(topic, message);
    return this.writeRetained(topic);
  }

  /**
   * A retained message expired here: delete it from Redis unless it changed
   * there since (best effort: one left behind expires again where it is read).
   */
  private expireRetained(topic: string): void {
    const version = this.retained.expired(topic);
    if (version === undefined) return;
    const key = this.keys.retained(topic);
    this.client.sendCommand(this.unretain.call(key, version)).catch(() => {});
  }

  /**
   * A change of `topic` heard from another node could not be placed in order
   * (retained_versions.ts): take what Redis holds (failing, the resync that
   * follows Redis's return reads it).
   */
  private async refreshRetained(topic: string): Promise<void> {
    try {
      const [counter, h] = await Promise.all([
        this.retainedCounter(),
        this.client.sendCommand(["HGETALL", this.keys.retained(topic)]) as Promise<
          Record<string, Buffer>
        >,
      ]);
      // No key: cleared, at the counter's version or earlier.
      const message = h.m === undefined ? undefined : decodeMessage(h.m.toString(), ownBytes(h.p));
      this.retained.fromRedis(topic, message ? versionOf(h) : counter, message);
    } catch {
      // Redis unreachable: the node reads the retained set again once it is back.
    }
  }

  /** The version the last retained change got (0: none yet). */
  private async retainedCounter(): Promise<number> {
    const n = await this.client.sendCommand(["HGET", this.keys.retainedVersions(), "n"]);
    return n == null ? 0 : Number(String(n));
  }

  private async loadRetained(): Promise<void> {
    this.generation = await this.retainedGeneration();
    await this.readRetained((topic, m, version) => this.retained.fromRedis(topic, version, m));
  }

  /** Every retained message in Redis, with its version, to `each`. */
  private async readRetained(
    each: (topic: string, m: MessageData, version: number) => void,
  ): Promise<void> {
    const keys = await this.scan(this.keys.retainedPattern());
    for (let i = 0; i < keys.length; i += 500) {
      const chunk = keys.slice(i, i + 500);
      const hashes = await this.read(chunk.map((k) => ["HGETALL", k])) as Record<string, Buffer>[];
      hashes.forEach((h, j) => {
        if (h.m === undefined) return; // the marker, the version counter
        const m = decodeMessage(h.m.toString(), ownBytes(h.p));
        each(this.keys.topicOf(chunk[j]), m, versionOf(h));
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
    const scripts = [this.apply, this.retain, this.unretain];
    Promise.all(scripts.map((s) => this.client.sendCommand(["SCRIPT", "LOAD", s.text])))
      .then(() => this.scriptsLoaded(true), () => {});
  }

  private scriptsLoaded(loaded: boolean): void {
    this.apply.loaded = this.retain.loaded = this.unretain.loaded = loaded;
  }

  private catchUp(): void {
    for (const t of [...this.dirtyRetained]) this.writeRetained(t).catch(() => {});
  }
}

const NO_PAYLOAD = Buffer.alloc(0);

/** A retained message's version (written before versions were: 0, older than any). */
function versionOf(h: Record<string, Buffer>): number {
  return h.v === undefined ? 0 : Number(h.v.toString());
}
