/**
 * Writes the changes of persistent sessions (session expiry > 0) to the session store, one batch at
 * a time (group commit): while a batch is being written, the next gathers every change made
 * meanwhile (every socket read in between adds to it), so batches grow with the load: one round
 * trip on Redis and one COMMIT on SQLite carry hundreds of messages. Each message is stored once
 * for all sessions it goes to. A batch goes one event-loop turn after it opened or after the write
 * ahead of it returned, later if it holds deliveries not yet acknowledged (`lingers`): a delivery
 * sent and acknowledged before its batch is written leaves it (SessionBatchBuilder), so an online
 * persistent subscriber costs the store almost nothing. Clean sessions never reach the journal, and
 * without a session store (the in-memory mode) the broker has no journal at all: nothing here runs
 * on that path.
 *
 * Acknowledgements wait for the batch that holds what they acknowledge (`acknowledge`), in the
 * order the PUBLISH packets came. A failed batch is never acknowledged: the publisher's connection
 * is closed, so it resends after reconnecting; the sessions it touched are rewritten in full from
 * memory by the next batch that succeeds (retried every second meanwhile), unless the store took
 * all of it but a fenced client's changes (FencedWriteError: nothing is behind). An in-process
 * publisher (LocalClient: a bridge's upstream, Kafka) waits for its batch too (`whenStoredSoon`);
 * it hands over one message at a time, so that batch goes at once instead of a turn later, and
 * without lingering.
 *
 * Why leaving out a sent-and-acknowledged delivery keeps "acknowledged means kept": a PUBACK/PUBREC
 * to the publisher promises the message is stored for every persistent session that must still
 * receive it. A session that has already acknowledged it (PUBACK, or PUBCOMP for QoS 2) needs
 * nothing more: storing it would only be undone by the completion in the same write. Every other
 * session's entry stays in the batch and the publisher's acknowledgement still waits for that
 * batch. (A delivery completed for another reason, e.g. handed to another share-group member,
 * cancels the same way: the store would apply both changes together, so leaving both out stores the
 * same.) Only the batch not yet handed to the store is changed, so the store never sees half of a
 * pair; a crash before the write loses the pair as it would have lost both changes anyway (and the
 * publisher, not acknowledged, resends).
 */
import { SessionBatchBuilder } from "../store/batch.ts";
import { MessageIds } from "../store/ids.ts";
import { messageData } from "../store/retained.ts";
import {
  type BatchRider,
  FencedWriteError,
  type SessionChange,
  type SessionMeta,
  type SessionStore,
  type StoredDelivery,
  type StoredMessage,
  type StoredSubscription,
  type StoredWill,
} from "../store/types.ts";
import type { ProtocolVersion, Will } from "../mqtt/packet.ts";
import type { Connection } from "./connection.ts";
import { caughtUp, PendingWrite, refuse } from "./journal_write.ts";
import { BatchLinger, type LingerDeadlines } from "./journal_linger.ts";
import type { Message } from "./message.ts";
import type { Outgoing, Queued, Session, Subscription } from "./session.ts";

/** What the journal remembers of a persistent session beyond the Session object. */
export interface SessionRecord {
  username?: string;
  protocolVersion: ProtocolVersion;
  /** ms since epoch, while disconnected. */
  expiresAt?: number;
  /** ms since epoch, while a will waits for its delay. */
  willAt?: number;
}

const RETRY_MS = 1000;

export class SessionJournal {
  readonly ids: MessageIds;
  private batch = new SessionBatchBuilder();
  private flushScheduled = false;
  /** Someone waits on the open batch to go on (whenStoredSoon): written without delay. */
  private urgent = false;
  /** Whether the open batch still waits for acknowledgements of its sends. */
  private readonly linger: BatchLinger;
  private open: PendingWrite | undefined;
  /**
   * The batch being written (one at a time), until it settles: what is no
   * longer open may not be stored yet. Rejects when that batch failed.
   */
  private writing: PendingWrite | undefined;
  private readonly messageIds = new WeakMap<Message, string>();
  private readonly records = new WeakMap<Session, SessionRecord>();
  /** Client ids whose stored state may be behind: rewritten in full by the next batch. */
  private readonly dirty = new Set<string>();
  private failing = false;
  private retry: ReturnType<typeof setTimeout> | undefined;
  private retryMs = RETRY_MS;
  /** While writes fail, sessions are rewritten only when a retry is due (not on every batch). */
  private resyncDue = false;
  /** Counters for $SYS and measurements. */
  readonly stats = { batches: 0, failedBatches: 0, changes: 0 };

  constructor(
    readonly store: SessionStore,
    private readonly lookup: (clientId: string) => Session | undefined,
    private readonly log: (line: string) => void,
    lingerDeadlines?: LingerDeadlines,
    idSuffix = "", // appended to stored message ids (ids.ts nodeSuffix): unique across nodes
  ) {
    this.linger = new BatchLinger(lingerDeadlines);
    this.ids = new MessageIds(Date.now, idSuffix);
  }

  /** True when `session` is written to the store. */
  tracks(session: Session): boolean {
    return session.journal === this;
  }

  record(session: Session): SessionRecord | undefined {
    return this.records.get(session);
  }

  /** The stored id of `message`, made on first use. */
  idOf(message: Message): string {
    let id = this.messageIds.get(message);
    if (id === undefined) {
      id = this.ids.next();
      this.messageIds.set(message, id);
    }
    return id;
  }

  /** A message loaded from the store keeps its id. */
  remember(message: Message, id: string): void {
    this.messageIds.set(message, id);
    this.ids.observe(id);
  }

  // ---- changes (each a no-op for sessions the journal does not track)

  /** CONNECT accepted: a persistent session is written; one that stopped being persistent goes. */
  opened(session: Session, username: string | undefined, version: ProtocolVersion): void {
    if (session.expiryInterval === 0) {
      if (this.records.has(session)) this.deleted(session);
      return;
    }
    const fresh = !this.records.has(session);
    this.records.set(session, { username, protocolVersion: version });
    session.journal = this;
    if (fresh) this.add({ kind: "delete", clientId: session.clientId }); // a clean start
    this.writeMeta(session);
  }

  /** Restored from the store at start: tracked, nothing written. */
  adopt(session: Session, record: SessionRecord): void {
    this.records.set(session, record);
    session.journal = this;
  }

  /** Deadlines or will changed (disconnect, resume, will sent). */
  metaChanged(session: Session, changes: Partial<SessionRecord>): void {
    const r = this.records.get(session);
    if (!r) return;
    Object.assign(r, changes);
    this.writeMeta(session);
  }

  deleted(session: Session): void {
    if (!this.records.delete(session)) return;
    session.journal = undefined;
    this.add({ kind: "delete", clientId: session.clientId });
  }

  subscribed(sub: Subscription): void {
    if (!this.records.has(sub.session)) return;
    this.add({ kind: "subscribe", clientId: sub.session.clientId, sub: storedSubscription(sub) });
  }

  unsubscribed(session: Session, filter: string): void {
    if (!this.records.has(session)) return;
    this.add({ kind: "unsubscribe", clientId: session.clientId, filter });
  }

  queued(session: Session, q: Queued): void {
    if (!this.records.has(session)) return;
    const delivery = this.delivery(q);
    this.add({ kind: "enqueue", clientId: session.clientId, delivery });
  }

  sent(session: Session, packetId: number, o: Outgoing, fromQueue: boolean): void {
    if (!this.records.has(session)) return;
    const inflight = { ...this.delivery(o), packetId, released: o.released };
    this.add({ kind: "send", clientId: session.clientId, inflight, fromQueue });
  }

  dropped(session: Session, message: Message): void {
    if (!this.records.has(session)) return;
    this.add({ kind: "drop", clientId: session.clientId, messageId: this.idOf(message) });
  }

  released(session: Session, packetId: number): void {
    if (!this.records.has(session)) return;
    this.add({ kind: "release", clientId: session.clientId, packetId });
  }

  completed(session: Session, packetId: number, message: Message): void {
    if (!this.records.has(session)) return;
    const messageId = this.idOf(message);
    this.add({ kind: "complete", clientId: session.clientId, packetId, messageId });
  }

  incoming(session: Session, packetId: number, add: boolean): void {
    if (!this.records.has(session)) return;
    this.add({ kind: "incoming", clientId: session.clientId, packetId, add });
  }

  // ---- acknowledgements

  /**
   * Send an acknowledgement once everything written so far is stored, after
   * any earlier acknowledgement of this connection [MQTT-4.6.0-2]. When the
   * store fails, the connection is closed instead (the client resends).
   * Returns the promise of that when it has to wait (a handler may return it
   * to stop reading the connection meanwhile).
   */
  acknowledge(conn: Connection, send: () => void): Promise<void> | undefined {
    // Batches settle in order, so waiting for the latest keeps this connection's order.
    const durable = this.open ?? this.writing;
    const session = conn.session;
    const behind = session !== undefined && this.dirty.has(session.clientId);
    if (durable) return durable.wait(conn, behind ? undefined : send);
    // Nothing is being written, so no earlier acknowledgement of this connection waits.
    if (behind) {
      if (!conn.closing) refuse(conn, "session not stored", this.log);
    } else send();
    return undefined;
  }

  /**
   * The batch holding what was written so far: resolves when it is stored,
   * rejects when it failed; undefined when nothing is waiting to be written.
   */
  whenStored(): Promise<void> | undefined {
    return this.open?.promise;
  }

  /** `whenStored`, and no session left behind by a failed batch then (PendingWrite.kept). */
  whenCaughtUp(): Promise<void> | undefined {
    return caughtUp(this.open ?? this.writing, this.dirty);
  }

  /**
   * `whenStored`, for a caller that cannot go on meanwhile (a bridge's upstream hands over
   * one message at a time): the batch is written at once, not a turn or more later. None
   * open: the batch being written, which may hold changes made a while ago (a retained
   * message is routed only once its own store write returned).
   */
  whenStoredSoon(): Promise<void> | undefined {
    const open = this.open;
    if (!open) return this.writing?.promise;
    if (!this.urgent) {
      this.urgent = true;
      // While a write is on its way, its return starts the next one (schedule()).
      if (!this.writing) queueMicrotask(() => this.flush());
    }
    return open.promise;
  }

  /**
   * `rider` goes with the open batch if that batch holds deliveries of `message` (see
   * `BatchRider`); else it is left unapplied. Never a batch without them: other changes open
   * and write batches meanwhile, and one written before the deliveries would store the rider's
   * write before the message it stands for (lost, with a crash in between).
   */
  ride(rider: BatchRider, message: Message): void {
    if (this.carrier(message)) this.batch.riders.push(rider);
  }

  /**
   * The batch holding the deliveries of `message`, asked right after it was routed: an
   * acknowledgement held meanwhile must not outlive that batch's failure. Undefined when no
   * persistent session got it.
   */
  carrier(message: Message): PendingWrite | undefined {
    const open = this.open; // none: nothing changed since the last write (no lookup then)
    if (open === undefined) return undefined;
    const id = this.messageIds.get(message);
    return id !== undefined && this.batch.carries(id) ? open : undefined;
  }

  /**
   * Resolves when everything written so far is stored (or failed). Its caller cannot go
   * on meanwhile (closing, a takeover handing a session on): no linger.
   */
  async settled(): Promise<void> {
    while (this.open || this.flushScheduled || this.writing) {
      const pending = this.whenStoredSoon() ?? this.writing?.promise;
      if (pending) await pending.catch(() => {});
      else await new Promise((r) => setTimeout(r, 0)); // a flush is scheduled: let it run
    }
  }

  close(): void {
    clearTimeout(this.retry);
  }

  // ---- batching

  private add(change: SessionChange): void {
    this.batch.add(change);
    this.stats.changes++;
    this.schedule();
  }

  private delivery(d: Queued | Outgoing): StoredDelivery {
    const messageId = this.idOf(d.message);
    const message = d.message;
    this.batch.messageLater(messageId, () => storedMessage(message, messageId));
    const out: { -readonly [K in keyof StoredDelivery]: StoredDelivery[K] } = {
      messageId,
      qos: d.qos,
      retain: d.retain,
    };
    if (d.subscriptionIds) out.subscriptionIds = d.subscriptionIds;
    if (d.share !== undefined) out.share = d.share;
    return out;
  }

  private writeMeta(session: Session): void {
    const r = this.records.get(session)!;
    const will = session.will ?? session.pendingWill;
    const meta: { -readonly [K in keyof SessionMeta]: SessionMeta[K] } = {
      clientId: session.clientId,
      protocolVersion: r.protocolVersion,
      expiryInterval: session.expiryInterval,
    };
    if (r.username !== undefined) meta.username = r.username;
    if (r.expiresAt !== undefined) meta.expiresAt = r.expiresAt;
    if (will) meta.will = storedWill(will);
    if (r.willAt !== undefined && will) meta.willAt = r.willAt;
    this.add({ kind: "meta", meta });
  }

  private schedule(): void {
    this.open ??= new PendingWrite(this.log, this.dirty);
    // Group commit: while a batch is being written, the next one gathers.
    if (this.flushScheduled || this.writing) return;
    this.flushScheduled = true;
    // A macrotask, not a microtask: the reads of every connection ready now
    // land in this batch (measured: 150x fewer round trips than per read);
    // unless someone waits on it to go on (whenStoredSoon).
    if (this.urgent) queueMicrotask(() => this.flush());
    else setTimeout(() => this.flush(), 0);
  }

  private flush(): void {
    this.flushScheduled = false;
    if (this.writing) return; // the write ahead of it flushes when it returns
    if (this.lingers()) {
      this.flushScheduled = true;
      setTimeout(() => this.flush(), 0);
      return;
    }
    this.linger.reset();
    this.urgent = false;
    const open = this.open ?? new PendingWrite(this.log, this.dirty);
    this.open = undefined;
    let batch = this.batch;
    this.batch = new SessionBatchBuilder();
    if (this.dirty.size > 0 && (!this.failing || this.resyncDue)) {
      this.resyncDue = false;
      batch = this.withSnapshots(batch);
    }
    if (batch.changes.size === 0) {
      open.stored();
      return;
    }
    this.stats.batches++;
    // `writing` goes before the batch's acknowledgements run: one asked for a microtask later
    // (a retained write answered in the same Redis read) was queued on it and never sent.
    const written = this.store.write(batch).then(
      () => {
        this.writing = undefined;
        this.retryMs = RETRY_MS;
        if (this.failing) {
          this.failing = false;
          this.log("store: writes succeed again; sessions are stored");
        }
        if (this.dirty.size > 0) this.retryLater(); // rewrite what the outage left behind
        open.stored();
      },
      (e) => {
        this.writing = undefined;
        this.stats.failedBatches++;
        // Fenced clients (another node writes them) aside, all of it is stored: none is behind.
        if (!(e instanceof FencedWriteError)) {
          if (!this.failing) this.log(`store: writes fail (${errorText(e)}); not acknowledging`);
          this.failing = true;
          for (const clientId of batch.changes.keys()) this.dirty.add(clientId);
          this.retryLater();
        }
        open.failed(e);
      },
    );
    this.writing = open;
    written.then(() => {
      // What gathered meanwhile goes next turn, so acknowledgements read now can cancel sends.
      if (this.open) this.schedule();
      else if (this.resyncDue && this.dirty.size > 0) this.flush(); // a rewrite came due
    });
  }

  /**
   * Deliveries sent by the open batch are usually acknowledged soon: wait, so
   * they leave the batch instead of being stored now and deleted by the next
   * one; unless someone waits on it to go on (whenStoredSoon).
   */
  private lingers(): boolean {
    return !this.urgent && this.linger.waits(this.batch, this.stats.changes);
  }

  /** Rewrite the sessions left behind after a while (1 s, doubling to 8 s while it fails). */
  private retryLater(): void {
    if (this.retry !== undefined) return;
    const ms = this.failing ? this.retryMs : 0;
    if (this.failing) this.retryMs = Math.min(this.retryMs * 2, 8 * RETRY_MS);
    this.retry = setTimeout(() => {
      this.retry = undefined;
      if (this.dirty.size === 0) return;
      this.resyncDue = true;
      if (!this.flushScheduled) {
        this.flushScheduled = true;
        queueMicrotask(() => this.flush());
      }
    }, ms);
  }

  /** Replace the changes of sessions that may be behind by a full rewrite of each. */
  private withSnapshots(batch: SessionBatchBuilder): SessionBatchBuilder {
    const out = new SessionBatchBuilder();
    for (const [clientId, changes] of batch.changes) {
      if (this.dirty.has(clientId)) continue;
      for (const c of changes) out.add(c);
    }
    for (const m of batch.messages) out.message(m);
    out.riders.push(...batch.riders);
    for (const clientId of this.dirty) {
      out.add({ kind: "delete", clientId });
      const session = this.lookup(clientId);
      if (session && this.records.has(session)) this.snapshot(session, out);
    }
    this.dirty.clear();
    return out;
  }

  private snapshot(session: Session, out: SessionBatchBuilder): void {
    const saved = this.batch;
    this.batch = out; // writeMeta and delivery() add to `out`
    try {
      this.writeMeta(session);
      const clientId = session.clientId;
      for (const sub of session.subscriptions.values()) {
        out.add({ kind: "subscribe", clientId, sub: storedSubscription(sub) });
      }
      for (const q of session.queue) {
        out.add({ kind: "enqueue", clientId, delivery: this.delivery(q) });
      }
      for (const [packetId, o] of session.inflight) {
        const inflight = { ...this.delivery(o), packetId, released: o.released };
        out.add({ kind: "send", clientId, inflight, fromQueue: false });
      }
      for (const packetId of session.incomingQos2) {
        out.add({ kind: "incoming", clientId, packetId, add: true });
      }
    } finally {
      this.batch = saved;
    }
  }
}

function storedSubscription(sub: Subscription): StoredSubscription {
  const s: { -readonly [K in keyof StoredSubscription]: StoredSubscription[K] } = {
    filter: sub.filter,
    qos: sub.qos,
  };
  if (sub.noLocal) s.noLocal = true;
  if (sub.retainAsPublished) s.retainAsPublished = true;
  if (sub.retainHandling) s.retainHandling = sub.retainHandling;
  if (sub.subscriptionId !== undefined) s.subscriptionId = sub.subscriptionId;
  return s;
}

function storedMessage(m: Message, id: string): StoredMessage {
  return { id, ...messageData(m) };
}

function storedWill(w: Will): StoredWill {
  const s: { -readonly [K in keyof StoredWill]: StoredWill[K] } = {
    topic: w.topic,
    payload: w.payload,
    qos: w.qos,
    retain: w.retain,
    delayInterval: w.properties?.willDelayInterval ?? 0,
  };
  if (w.properties !== undefined) s.properties = w.properties;
  return s;
}

function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
