/**
 * The SQLite store (`store.type: sqlite`): persistent sessions and retained
 * messages in one local file, nothing else to run (an edge gateway's store).
 * Retained messages are also indexed in memory (no query per SUBSCRIBE).
 *
 * Every write of a tick goes into one transaction (src/store/sqlite_db.ts);
 * a batch's promise resolves after its COMMIT, so the broker acknowledges
 * only what is committed. What `synchronous` full/normal keep across a crash
 * or a power cut is described there. A message sent to many sessions is one
 * row with a reference count, deleted with its last reference. Expired
 * retained messages are deleted by a sweep; free pages are given back.
 */
import { RetainedMemory } from "./retained.ts";
import {
  decodeDelivery,
  decodeMessage,
  decodeMetaFields,
  decodeSubscription,
  encodeDelivery,
  encodeMessageFields,
  encodeMetaFields,
  encodeSubscription,
  type MetaFields,
} from "./codec.ts";
import { SqliteDb, type SqliteDbOptions } from "./sqlite_db.ts";
import type {
  BatchRider,
  MessageData,
  SessionBatch,
  SessionChange,
  SessionStore,
  Store,
  StoredMessage,
  StoredSession,
  StoredState,
} from "./types.ts";

const SCHEMA = `
CREATE TABLE IF NOT EXISTS sessions (
  client_id TEXT PRIMARY KEY, meta TEXT NOT NULL, will_payload BLOB,
  last_packet_id INTEGER NOT NULL DEFAULT 0) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS subscriptions (
  client_id TEXT NOT NULL, filter TEXT NOT NULL, data TEXT NOT NULL,
  PRIMARY KEY (client_id, filter)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS queue (
  client_id TEXT NOT NULL, message_id TEXT NOT NULL, data TEXT NOT NULL,
  PRIMARY KEY (client_id, message_id)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS inflight (
  client_id TEXT NOT NULL, packet_id INTEGER NOT NULL, message_id TEXT NOT NULL,
  data TEXT NOT NULL, released INTEGER NOT NULL, PRIMARY KEY (client_id, packet_id)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS incoming (
  client_id TEXT NOT NULL, packet_id INTEGER NOT NULL,
  PRIMARY KEY (client_id, packet_id)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS messages (
  id TEXT PRIMARY KEY, refs INTEGER NOT NULL, fields TEXT NOT NULL, payload BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS retained (
  topic TEXT PRIMARY KEY, fields TEXT NOT NULL, payload BLOB NOT NULL, expires_at INTEGER);
CREATE INDEX IF NOT EXISTS retained_expiry ON retained (expires_at) WHERE expires_at IS NOT NULL;
`;

/** How often expired retained messages are deleted and free pages given back (ms). */
const SWEEP_MS = 60_000;

export class SqliteStore implements Store {
  readonly sessions: SqliteSessionStore;
  private readonly retained = new RetainedMemory();
  private readonly sweep: ReturnType<typeof setInterval>;

  constructor(readonly file: SqliteDb) {
    file.db.exec(SCHEMA);
    this.sessions = new SqliteSessionStore(file);
    const now = Date.now();
    for (const r of file.prepare("SELECT topic, fields, payload FROM retained").all()) {
      const m = decodeMessage(r.fields as string, r.payload as Uint8Array);
      if (m.expiresAt === undefined || m.expiresAt > now) this.retained.set(r.topic as string, m);
    }
    this.sweep = setInterval(() => this.sweepNow(), SWEEP_MS);
    // Not a reason to keep the process alive (Deno and Bun timers both have unref).
    (this.sweep as { unref?: () => void }).unref?.();
  }

  /** Delete expired retained messages, give free pages back. */
  sweepNow(): void {
    void this.file.write(() => {
      this.file.prepare("DELETE FROM retained WHERE expires_at <= ?").run(Date.now());
    }).then(() => this.file.vacuum()).catch(() => {});
  }

  setRetained(topic: string, message: MessageData | undefined, rider?: BatchRider): Promise<void> {
    const stored = this.retained.set(topic, message);
    const written = this.file.write(() => {
      if (!stored) this.file.prepare("DELETE FROM retained WHERE topic = ?").run(topic);
      else {
        this.file.prepare(
          "INSERT OR REPLACE INTO retained (topic, fields, payload, expires_at) VALUES (?, ?, ?, ?)",
        ).run(topic, encodeMessageFields(stored), stored.payload, stored.expiresAt ?? null);
      }
      rider?.sqlite?.(); // in the same transaction: both or neither
    });
    if (!rider?.sqlite) return written;
    return written.then(() => void (rider.applied = true));
  }

  matchRetained(filter: string): MessageData[] {
    return this.retained.match(filter, this.forgetExpired);
  }

  retainedCursor(filter: string): Iterator<MessageData> {
    return this.retained.cursor(filter, this.forgetExpired);
  }

  /** A retained message found expired in memory goes from the file too. */
  private readonly forgetExpired = (topic: string) => {
    void this.file.write(() => {
      this.file.prepare("DELETE FROM retained WHERE topic = ? AND expires_at <= ?")
        .run(topic, Date.now());
    }).catch(() => {});
  };

  retainedCount(): number {
    return this.retained.index.size;
  }

  open(): Promise<void> {
    return Promise.resolve();
  }

  close(): Promise<void> {
    clearInterval(this.sweep);
    this.file.close();
    return Promise.resolve();
  }
}

/** Open (or create) the file and its tables. */
export function openSqliteStore(options: SqliteDbOptions): SqliteStore {
  return new SqliteStore(new SqliteDb(options));
}

type Row = Record<string, unknown>;

/** Sessions in tables; one batch is one part of the tick's transaction. */
export class SqliteSessionStore implements SessionStore {
  constructor(private readonly file: SqliteDb) {}

  load(): Promise<StoredState> {
    const byClient = <T>(sql: string, f: (r: Row) => T) => {
      const out = new Map<string, T[]>();
      for (const r of this.file.prepare(sql).all()) {
        const id = r.client_id as string;
        const list = out.get(id);
        if (list) list.push(f(r));
        else out.set(id, [f(r)]);
      }
      return out;
    };
    const subs = byClient(
      "SELECT client_id, data FROM subscriptions",
      (r) => decodeSubscription(r.data as string),
    );
    const queues = byClient(
      "SELECT client_id, message_id, data FROM queue ORDER BY client_id, message_id",
      (r) => decodeDelivery(r.message_id as string, r.data as string),
    );
    const inflight = byClient(
      "SELECT client_id, packet_id, message_id, data, released FROM inflight " +
        "ORDER BY client_id, message_id",
      (r) => ({
        ...decodeDelivery(r.message_id as string, r.data as string),
        packetId: Number(r.packet_id),
        released: r.released === 1,
      }),
    );
    const incoming = byClient(
      "SELECT client_id, packet_id FROM incoming",
      (r) => Number(r.packet_id),
    );
    const sessions: StoredSession[] = [];
    for (const r of this.file.prepare("SELECT * FROM sessions").all()) {
      const id = r.client_id as string;
      sessions.push({
        ...decodeMetaFields(
          JSON.parse(r.meta as string) as MetaFields,
          (r.will_payload as Uint8Array | null) ?? undefined,
        ),
        subscriptions: subs.get(id) ?? [],
        queue: queues.get(id) ?? [],
        inflight: inflight.get(id) ?? [],
        incomingQos2: incoming.get(id) ?? [],
        lastPacketId: Number(r.last_packet_id),
      });
    }
    const messages = new Map<string, StoredMessage>();
    for (const r of this.file.prepare("SELECT id, fields, payload FROM messages").all()) {
      const id = r.id as string;
      messages.set(id, { id, ...decodeMessage(r.fields as string, r.payload as Uint8Array) });
    }
    return Promise.resolve({ sessions, messages });
  }

  write(batch: SessionBatch): Promise<void> {
    const riders = batch.riders?.filter((r) => r.sqlite) ?? [];
    const written = this.file.write(() => {
      this.apply(batch);
      for (const r of riders) r.sqlite!(); // in the same transaction: both or neither
    });
    if (riders.length === 0) return written;
    return written.then(() => {
      for (const r of riders) r.applied = true;
    });
  }

  close(): Promise<void> {
    return Promise.resolve(); // the file is closed by SqliteStore.close
  }

  private apply(batch: SessionBatch): void {
    const refs = new Map<string, number>();
    const ref = (id: string, n: number) => refs.set(id, (refs.get(id) ?? 0) + n);
    /** The last packet id per client, written once per batch. */
    const packetIds = new Map<string, number>();
    for (const [clientId, changes] of batch.changes) {
      let exists: boolean | undefined;
      for (const c of changes) {
        if (c.kind === "meta" || c.kind === "delete") {
          this.applyLifecycle(clientId, c, ref);
          exists = c.kind === "meta";
          if (!exists) packetIds.delete(clientId);
          continue;
        }
        exists ??= this.file.prepare("SELECT 1 FROM sessions WHERE client_id = ?").get(clientId) !==
          undefined;
        // The contract: meta is written first; a change to no session is lost.
        if (!exists) continue;
        this.applyChange(clientId, c, ref);
        if (c.kind === "send") packetIds.set(clientId, c.inflight.packetId);
      }
    }
    const lastId = this.file.prepare("UPDATE sessions SET last_packet_id = ? WHERE client_id = ?");
    for (const [clientId, id] of packetIds) lastId.run(id, clientId);
    this.adjustReferences(batch, refs);
  }

  /**
   * Reference counts, one statement per message in the usual cases: a carried
   * message is inserted with its count (and not at all if nothing holds it); a
   * message losing references is deleted when that takes it to zero.
   */
  private adjustReferences(batch: SessionBatch, refs: Map<string, number>): void {
    const carried = new Map(batch.messages.map((m) => [m.id, m]));
    const upsert = this.file.prepare(
      "INSERT INTO messages (id, refs, fields, payload) VALUES (?, ?, ?, ?) " +
        "ON CONFLICT (id) DO UPDATE SET refs = refs + excluded.refs",
    );
    const add = this.file.prepare("UPDATE messages SET refs = refs + ? WHERE id = ?");
    const gone = this.file.prepare("DELETE FROM messages WHERE id = ? AND refs + ? <= 0");
    for (const [id, n] of refs) {
      const m = carried.get(id);
      if (n > 0 && m) upsert.run(id, n, encodeMessageFields(m), m.payload);
      else if (n > 0) add.run(n, id);
      else if (n < 0 && gone.run(id, n).changes === 0) add.run(n, id);
    }
  }

  private applyLifecycle(
    clientId: string,
    c: Extract<SessionChange, { kind: "meta" | "delete" }>,
    ref: (id: string, n: number) => void,
  ): void {
    if (c.kind === "meta") {
      this.file.prepare(
        "INSERT INTO sessions (client_id, meta, will_payload) VALUES (?, ?, ?) " +
          "ON CONFLICT (client_id) DO UPDATE SET meta = excluded.meta, " +
          "will_payload = excluded.will_payload",
      ).run(clientId, JSON.stringify(encodeMetaFields(c.meta)), c.meta.will?.payload ?? null);
      return;
    }
    // The session's entries drop their references; the store finds them itself.
    for (const table of ["queue", "inflight"]) {
      for (
        const r of this.file.prepare(`SELECT message_id FROM ${table} WHERE client_id = ?`).all(
          clientId,
        )
      ) {
        ref(r.message_id as string, -1);
      }
    }
    for (const table of ["sessions", "subscriptions", "queue", "inflight", "incoming"]) {
      this.file.prepare(`DELETE FROM ${table} WHERE client_id = ?`).run(clientId);
    }
  }

  private applyChange(
    clientId: string,
    c: Exclude<SessionChange, { kind: "meta" | "delete" }>,
    ref: (id: string, n: number) => void,
  ): void {
    switch (c.kind) {
      case "subscribe":
        this.file.prepare(
          "INSERT OR REPLACE INTO subscriptions (client_id, filter, data) VALUES (?, ?, ?)",
        )
          .run(clientId, c.sub.filter, encodeSubscription(c.sub));
        break;
      case "unsubscribe":
        this.file.prepare("DELETE FROM subscriptions WHERE client_id = ? AND filter = ?")
          .run(clientId, c.filter);
        break;
      case "enqueue": {
        const d = c.delivery;
        this.file.prepare(
          "INSERT OR REPLACE INTO queue (client_id, message_id, data) VALUES (?, ?, ?)",
        ).run(clientId, d.messageId, encodeDelivery(d, false));
        ref(d.messageId, 1);
        break;
      }
      case "send": {
        const f = c.inflight;
        if (c.fromQueue) {
          this.file.prepare("DELETE FROM queue WHERE client_id = ? AND message_id = ?")
            .run(clientId, f.messageId);
        } else ref(f.messageId, 1);
        this.file.prepare(
          "INSERT OR REPLACE INTO inflight (client_id, packet_id, message_id, data, released) " +
            "VALUES (?, ?, ?, ?, ?)",
        ).run(clientId, f.packetId, f.messageId, encodeDelivery(f, false), f.released ? 1 : 0);
        break;
      }
      case "release":
        this.file.prepare("UPDATE inflight SET released = 1 WHERE client_id = ? AND packet_id = ?")
          .run(clientId, c.packetId);
        break;
      case "complete": {
        const r = this.file.prepare("DELETE FROM inflight WHERE client_id = ? AND packet_id = ?")
          .run(clientId, c.packetId);
        if (r.changes > 0) ref(c.messageId, -1);
        break;
      }
      case "drop": {
        const r = this.file.prepare("DELETE FROM queue WHERE client_id = ? AND message_id = ?")
          .run(clientId, c.messageId);
        if (r.changes > 0) ref(c.messageId, -1);
        break;
      }
      case "incoming":
        if (c.add) {
          this.file.prepare("INSERT OR IGNORE INTO incoming (client_id, packet_id) VALUES (?, ?)")
            .run(clientId, c.packetId);
        } else {
          this.file.prepare("DELETE FROM incoming WHERE client_id = ? AND packet_id = ?")
            .run(clientId, c.packetId);
        }
        break;
    }
  }
}
