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
import { redactUrl, redisClient } from "./redis_client.ts";
import { byMessageId } from "./ids.ts";
import { Buffer } from "node:buffer";
import { RetainedMemory } from "./retained.ts";
import {
  adjustRefs,
  ApplyScript,
  type Command,
  deleteSession,
  removeEntry,
  storeMessage,
} from "./redis_scripts.ts";
import {
  bytes,
  decodeDelivery,
  decodeInflight,
  decodeMessage,
  decodeMeta,
  decodeStoredMessage,
  decodeSubscription,
  encodeDelivery,
  encodeMessageFields,
  encodeMeta,
  encodeSubscription,
  ownBytes,
  type RedisKeyPrefixes,
  RedisKeys,
} from "./redis_codec.ts";
import type {
  MessageData,
  SessionBatch,
  SessionChange,
  SessionStore,
  Store,
  StoredMessage,
  StoredSession,
  StoredState,
} from "./types.ts";

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

  /** Apply commands atomically, in order, as one script call: one request, one reply. */
  async exec(commands: Command[], payloads?: Buffer): Promise<void> {
    if (commands.length === 0) return;
    this.stats.commands += commands.length;
    this.stats.roundTrips++;
    await this.client.sendCommand(this.apply.call(commands, payloads));
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

  private writeRetained(topic: string, message: MessageData | undefined): Promise<void> {
    const key = this.keys.retained(topic);
    if (!message) return this.exec([["DEL", key]]);
    return this.exec([
      ["DEL", key],
      ["HSET", key, "m", encodeMessageFields(message), "p", bytes(message.payload)],
    ]);
  }

  private async loadRetained(): Promise<void> {
    const keys = await this.scan(this.keys.retainedPattern());
    for (let i = 0; i < keys.length; i += 500) {
      const chunk = keys.slice(i, i + 500);
      const hashes = await this.read(chunk.map((k) => ["HGETALL", k])) as Record<string, Buffer>[];
      hashes.forEach((h, j) => {
        if (h.m === undefined) return;
        const m = decodeMessage(h.m.toString(), ownBytes(h.p));
        this.retained.set(this.keys.topicOf(chunk[j]), m);
      });
    }
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

/** Persistent sessions in Redis; see src/store/redis_codec.ts for the key layout. */
export class RedisSessionStore implements SessionStore {
  constructor(private readonly redis: RedisStore) {}

  write(batch: SessionBatch): Promise<void> {
    const keys = this.redis.keys;
    const adjust = (ids: string[], deltas: number[]): Command =>
      adjustRefs(ids.map((id) => keys.message(id)), deltas);
    // Order: the messages, the references the batch adds, then the changes
    // (whose removals drop references at once), then a sweep of carried
    // messages nothing references. A removal never meets a count the batch
    // has yet to add.
    const commands: Command[] = [];
    const payloads: Uint8Array[] = [];
    let offset = 0;
    for (const m of batch.messages) {
      const length = m.payload.byteLength;
      commands.push(storeMessage(keys.message(m.id), encodeMessageFields(m), offset, length));
      payloads.push(m.payload);
      offset += length;
    }
    const adds = new Map<string, number>();
    for (const changes of batch.changes.values()) {
      for (const c of changes) {
        const id = c.kind === "enqueue"
          ? c.delivery.messageId
          : c.kind === "send" && !c.fromQueue
          ? c.inflight.messageId
          : undefined;
        if (id !== undefined) adds.set(id, (adds.get(id) ?? 0) + 1);
      }
    }
    if (adds.size > 0) commands.push(adjust([...adds.keys()], [...adds.values()]));
    for (const [clientId, changes] of batch.changes) {
      let lastPacketId: number | undefined;
      for (const c of changes) {
        this.commandsFor(clientId, c, commands);
        if (c.kind === "send") lastPacketId = c.inflight.packetId;
        else if (c.kind === "delete") lastPacketId = undefined;
      }
      // One write of the last packet id per client and batch, however many sends.
      if (lastPacketId !== undefined) {
        commands.push(["SET", keys.packetId(clientId), String(lastPacketId)]);
      }
    }
    if (batch.messages.length > 0) {
      const ids = batch.messages.map((m) => m.id);
      commands.push(adjust(ids, ids.map(() => 0)));
    }
    return this.redis.exec(commands, Buffer.concat(payloads, offset));
  }

  async load(): Promise<StoredState> {
    const keys = this.redis.keys;
    return this.loadSessions(
      (await this.redis.scan(keys.sessionPattern())).map((k) => keys.clientIdOf(k)),
    );
  }

  async loadSessions(clientIds: readonly string[]): Promise<StoredState> {
    const keys = this.redis.keys;
    const sessions: StoredSession[] = [];
    const wanted = new Set<string>();
    for (let i = 0; i < clientIds.length; i += 200) {
      const chunk = clientIds.slice(i, i + 200);
      const replies = await this.redis.read(chunk.flatMap((id) => [
        ["HGETALL", keys.session(id)],
        ["HGETALL", keys.subscriptions(id)],
        ["HGETALL", keys.queue(id)],
        ["HGETALL", keys.inflight(id)],
        ["SMEMBERS", keys.released(id)],
        ["SMEMBERS", keys.incoming(id)],
        ["GET", keys.packetId(id)],
      ]));
      chunk.forEach((_id, j) => {
        const [meta, subs, queue, inflight, released, incoming, lastId] = replies.slice(
          j * 7,
          j * 7 + 7,
        ) as [
          Record<string, Buffer>,
          Record<string, Buffer>,
          Record<string, Buffer>,
          Record<string, Buffer>,
          Buffer[],
          Buffer[],
          Buffer | null,
        ];
        if (meta.c === undefined) return;
        const rel = new Set(released.map((b) => Number(b.toString())));
        const s: StoredSession = {
          ...decodeMeta(meta),
          subscriptions: Object.values(subs).map((v) => decodeSubscription(v.toString())),
          queue: Object.entries(queue)
            .map(([id, v]) => decodeDelivery(id, v.toString()))
            .sort(byMessageId),
          inflight: Object.entries(inflight)
            .map(([pid, v]) => decodeInflight(Number(pid), v.toString(), rel.has(Number(pid))))
            .sort(byMessageId),
          incomingQos2: incoming.map((b) => Number(b.toString())),
          lastPacketId: lastId ? Number(lastId.toString()) : 0,
        };
        for (const d of s.queue) wanted.add(d.messageId);
        for (const d of s.inflight) wanted.add(d.messageId);
        sessions.push(s);
      });
    }
    const messages = new Map<string, StoredMessage>();
    const ids = [...wanted];
    for (let i = 0; i < ids.length; i += 500) {
      const chunk = ids.slice(i, i + 500);
      const hashes = await this.redis.read(
        chunk.map((id) => ["HGETALL", keys.message(id)]),
      ) as Record<
        string,
        Buffer
      >[];
      hashes.forEach((h, j) => {
        if (h.m !== undefined) {
          messages.set(chunk[j], decodeStoredMessage(chunk[j], h.m.toString(), ownBytes(h.p)));
        }
      });
    }
    return { sessions, messages };
  }

  close(): Promise<void> {
    return this.redis.close();
  }

  /** The commands of one change (reference additions are counted by `write`). */
  private commandsFor(clientId: string, c: SessionChange, out: Command[]): void {
    const keys = this.redis.keys;
    switch (c.kind) {
      case "meta": {
        const key = keys.session(clientId);
        out.push(["DEL", key], ["HSET", key, ...encodeMeta(c.meta)]);
        break;
      }
      case "subscribe":
        out.push(["HSET", keys.subscriptions(clientId), c.sub.filter, encodeSubscription(c.sub)]);
        break;
      case "unsubscribe":
        out.push(["HDEL", keys.subscriptions(clientId), c.filter]);
        break;
      case "enqueue":
        out.push([
          "HSET",
          keys.queue(clientId),
          c.delivery.messageId,
          encodeDelivery(c.delivery, false),
        ]);
        break;
      case "send": {
        const f = c.inflight;
        if (c.fromQueue) out.push(["HDEL", keys.queue(clientId), f.messageId]);
        out.push(["HSET", keys.inflight(clientId), String(f.packetId), encodeDelivery(f, true)]);
        // The released set loses an id when its delivery completes, before the id is reused.
        if (f.released) out.push(["SADD", keys.released(clientId), String(f.packetId)]);
        break;
      }
      case "release":
        out.push(["SADD", keys.released(clientId), String(c.packetId)]);
        break;
      case "complete":
        out.push(removeEntry(
          keys.inflight(clientId),
          keys.released(clientId),
          String(c.packetId),
          keys.message(c.messageId),
        ));
        break;
      case "drop":
        out.push(removeEntry(keys.queue(clientId), "", c.messageId, keys.message(c.messageId)));
        break;
      case "incoming":
        out.push([c.add ? "SADD" : "SREM", keys.incoming(clientId), String(c.packetId)]);
        break;
      case "delete": {
        const all = keys.allOf(clientId);
        out.push(deleteSession(keys.message(""), all));
        break;
      }
    }
  }
}
