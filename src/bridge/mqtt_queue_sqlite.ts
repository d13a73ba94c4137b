/**
 * A bridge's outbound queue in the SQLite store's file: what was queued for an
 * unreachable upstream survives a restart (and a kill -9) of mqttx.
 *
 * Writes join the store's per-tick transaction (src/store/sqlite_db.ts); a
 * push resolves after that COMMIT, and the bridge plugin hands that promise to
 * the broker, which acknowledges the local publisher only then. The set of
 * live sequence numbers is also kept in memory (in push order, so the oldest
 * is first), which gives `size()` and the drop-oldest bound without a query.
 */
import type { SqliteDb } from "../store/sqlite_db.ts";
import type { BatchRider } from "../store/types.ts";
import type { QoS } from "../mqtt/packet.ts";
import {
  type BridgeQueue,
  dropOldest,
  type IncomingRecord,
  type InflightRecord,
  type OutboundMessage,
  type QueuedOutbound,
} from "./mqtt_queue.ts";

const SCHEMA = `CREATE TABLE IF NOT EXISTS bridge_queue (
  bridge TEXT NOT NULL, seq INTEGER NOT NULL, topic TEXT NOT NULL, payload BLOB NOT NULL,
  qos INTEGER NOT NULL, retain INTEGER NOT NULL, PRIMARY KEY (bridge, seq)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS bridge_inflight (
  bridge TEXT NOT NULL, message_id INTEGER NOT NULL, seq INTEGER NOT NULL,
  released INTEGER NOT NULL, PRIMARY KEY (bridge, message_id)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS bridge_incoming (
  bridge TEXT NOT NULL, message_id INTEGER NOT NULL, topic TEXT NOT NULL, payload BLOB NOT NULL,
  qos INTEGER NOT NULL, retain INTEGER NOT NULL, PRIMARY KEY (bridge, message_id)) WITHOUT ROWID`;

/** Rows read at once when the pump asks for fewer. */
const READ_AHEAD = 512;

export class SqliteBridgeQueue implements BridgeQueue {
  /** Live seqs, oldest first (a Set iterates in insertion order). */
  private readonly live = new Set<number>();
  private nextSeq = 1;
  /** Rows read past what the last peek returned, following `aheadAfter`. */
  private ahead: QueuedOutbound[] = [];
  private aheadAfter = -1;
  /** Packet id → seq of the in-flight records (to delete the message with its record). */
  private readonly inflightSeq = new Map<number, number>();

  constructor(
    private readonly file: SqliteDb,
    private readonly bridge: string,
    private readonly max: number,
  ) {
    file.db.exec(SCHEMA);
    const rows = file.prepare("SELECT seq FROM bridge_queue WHERE bridge = ? ORDER BY seq")
      .all(bridge);
    for (const r of rows) this.live.add(Number(r.seq));
    if (rows.length > 0) this.nextSeq = Number(rows[rows.length - 1].seq) + 1;
    // A smaller queue-max than before the restart: the oldest go now.
    const over = this.trim();
    if (over.length > 0) void file.write(() => this.deleteSeqs(over)).catch(() => {});
  }

  push(m: OutboundMessage): Promise<number> {
    const seq = this.nextSeq++;
    this.live.add(seq);
    const dropped = this.trim();
    return this.file.write(() => {
      this.file.prepare(
        "INSERT INTO bridge_queue (bridge, seq, topic, payload, qos, retain) VALUES (?, ?, ?, ?, ?, ?)",
      ).run(this.bridge, seq, m.topic, m.payload, m.qos, m.retain ? 1 : 0);
      this.deleteSeqs(dropped);
    }).then(() => dropped.length);
  }

  peek(after: number, max: number): QueuedOutbound[] {
    // Read ahead: the pump asks for one or two messages per acknowledgement while draining.
    if (after !== this.aheadAfter || this.ahead.length === 0) {
      this.ahead = this.read(after, Math.max(max, READ_AHEAD));
      this.aheadAfter = after;
    }
    const out: QueuedOutbound[] = [];
    let i = 0;
    for (; i < this.ahead.length && out.length < max; i++) {
      if (this.live.has(this.ahead[i].seq)) out.push(this.ahead[i]);
    }
    this.ahead = this.ahead.slice(i);
    this.aheadAfter = out.length > 0 ? out[out.length - 1].seq : after;
    // Read ahead ran out before `max`: what was pushed since is in the table.
    if (out.length < max && this.ahead.length === 0 && i > 0) {
      out.push(...this.peek(this.aheadAfter, max - out.length));
    }
    return out;
  }

  /** Committed rows only: a push not yet committed is read once its promise resolved. */
  private read(after: number, max: number): QueuedOutbound[] {
    return this.file.prepare(
      "SELECT seq, topic, payload, qos, retain FROM bridge_queue " +
        "WHERE bridge = ? AND seq > ? ORDER BY seq LIMIT ?",
    ).all(this.bridge, after, max).map((r) => ({ seq: Number(r.seq), ...messageOf(r) }));
  }

  remove(seq: number): Promise<void> | void {
    if (!this.live.delete(seq)) return;
    return this.file.write(() => this.deleteSeqs([seq]));
  }

  size(): number {
    return this.live.size;
  }

  inflight(): InflightRecord[] {
    const rows = this.file.prepare(
      "SELECT message_id, seq, released FROM bridge_inflight WHERE bridge = ?",
    ).all(this.bridge);
    return rows.map((r) => {
      const rec = {
        messageId: Number(r.message_id),
        seq: Number(r.seq),
        released: r.released === 1,
      };
      this.inflightSeq.set(rec.messageId, rec.seq);
      return rec;
    });
  }

  putInflight(r: InflightRecord): Promise<void> {
    this.inflightSeq.set(r.messageId, r.seq);
    return this.file.write(() =>
      this.file.prepare(
        "INSERT OR REPLACE INTO bridge_inflight (bridge, message_id, seq, released) VALUES (?, ?, ?, ?)",
      ).run(this.bridge, r.messageId, r.seq, r.released ? 1 : 0)
    );
  }

  /** The record and the message in the same transaction: a crash keeps both or neither. */
  complete(messageId: number): Promise<void> | void {
    const seq = this.inflightSeq.get(messageId);
    if (seq === undefined) return;
    this.inflightSeq.delete(messageId);
    this.live.delete(seq);
    return this.file.write(() => {
      this.file.prepare("DELETE FROM bridge_inflight WHERE bridge = ? AND message_id = ?")
        .run(this.bridge, messageId);
      this.deleteSeqs([seq]);
    });
  }

  incoming(): IncomingRecord[] {
    return this.file.prepare(
      "SELECT message_id, topic, payload, qos, retain FROM bridge_incoming WHERE bridge = ?",
    ).all(this.bridge).map((r) => ({ messageId: Number(r.message_id), ...messageOf(r) }));
  }

  putIncoming(r: IncomingRecord): Promise<void> {
    return this.file.write(() =>
      this.file.prepare(
        "INSERT OR REPLACE INTO bridge_incoming (bridge, message_id, topic, payload, qos, retain) " +
          "VALUES (?, ?, ?, ?, ?, ?)",
      ).run(this.bridge, r.messageId, r.topic, r.payload, r.qos, r.retain ? 1 : 0)
    );
  }

  delIncoming(messageId: number): Promise<void> {
    return this.file.write(() => this.deleteIncoming(messageId));
  }

  incomingDeletion(messageId: number): BatchRider {
    return { sqlite: () => this.deleteIncoming(messageId) };
  }

  private deleteIncoming(messageId: number): void {
    this.file.prepare("DELETE FROM bridge_incoming WHERE bridge = ? AND message_id = ?")
      .run(this.bridge, messageId);
  }

  close(): void {
    // The file belongs to the store, which closes it.
  }

  /** Forget the oldest past the bound; returns their seqs, oldest first. */
  private trim(): number[] {
    return dropOldest(this.live, this.max);
  }

  private deleteSeqs(seqs: number[]): void {
    const del = this.file.prepare("DELETE FROM bridge_queue WHERE bridge = ? AND seq = ?");
    for (const s of seqs) del.run(this.bridge, s);
  }
}

/** The message columns of a `bridge_queue` or `bridge_incoming` row. */
function messageOf(r: Record<string, unknown>): OutboundMessage {
  return {
    topic: r.topic as string,
    payload: r.payload as Uint8Array,
    qos: Number(r.qos) as QoS,
    retain: r.retain === 1,
  };
}
