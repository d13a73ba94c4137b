/**
 * The outbound queue of one MQTT bridge: messages waiting to be sent to the
 * upstream broker, in the order they were accepted locally, each removed only
 * once the upstream acknowledged it (QoS 1/2) or it was written (QoS 0).
 *
 * A small seam so the queue can be kept in memory (here) or durably (SQLite,
 * Redis): the bridge only ever pushes at the tail, reads forward from a
 * sequence number and removes by sequence number (acknowledgements of QoS 1
 * and QoS 2 messages may come back out of order).
 */
import type { QoS } from "../mqtt/packet.ts";
import type { BatchRider } from "../store/types.ts";

/** A message for the upstream, with its topic already mapped to the remote name. */
export interface OutboundMessage {
  topic: string;
  payload: Uint8Array;
  qos: QoS;
  retain: boolean;
}

export interface QueuedOutbound extends OutboundMessage {
  /** Increases by one per push, never reused (a durable queue keeps it across restarts). */
  readonly seq: number;
}

/**
 * A QoS 2 message handed to the upstream under a packet id and not yet
 * completed (PUBCOMP). Kept with the queue, so that after a broken
 * link or a restart it is sent again under the same packet id (PUBLISH with
 * DUP, or only PUBREL once PUBREC came): the upstream recognises it, and QoS 2
 * stays exactly once (src/bridge/mqtt_outgoing.ts).
 */
export interface InflightRecord {
  messageId: number;
  seq: number;
  /** PUBREC came and PUBREL went out: only PUBREL is sent again. */
  released: boolean;
}

/**
 * A QoS 2 message from the upstream, PUBREC sent, PUBREL not yet come: kept
 * with the queue so that it survives a restart (acknowledged means kept) and is
 * published locally once, at PUBREL (src/bridge/mqtt_incoming.ts). The topic
 * is the upstream's (mapped when published).
 */
export interface IncomingRecord extends OutboundMessage {
  messageId: number;
}

export interface BridgeQueue {
  /**
   * Append at the tail. Past `max` messages the oldest are dropped; returns how
   * many were dropped by this push. A durable queue resolves only once the
   * message is stored (the local PUBACK waits for it).
   */
  push(message: OutboundMessage): number | Promise<number>;
  /** Up to `max` queued messages with `seq > after`, oldest first. */
  peek(after: number, max: number): QueuedOutbound[] | Promise<QueuedOutbound[]>;
  /** Forget a message (acknowledged upstream). Unknown or already dropped: nothing happens. */
  remove(seq: number): void | Promise<void>;
  /** Messages queued now. */
  size(): number;
  /** The in-flight records kept (after a restart: those of the last run). */
  inflight(): InflightRecord[] | Promise<InflightRecord[]>;
  /** Keep (or replace) the record of `r.messageId`; a durable queue resolves once stored. */
  putInflight(r: InflightRecord): void | Promise<void>;
  /** The upstream completed `messageId`: its record and its message go, in one step. */
  complete(messageId: number): void | Promise<void>;
  /** The incoming QoS 2 messages kept (after a restart: those of the last run). */
  incoming(): IncomingRecord[] | Promise<IncomingRecord[]>;
  /** Keep (or replace) the incoming message `r.messageId`; a durable queue resolves once stored. */
  putIncoming(r: IncomingRecord): void | Promise<void>;
  /** Forget the incoming message `messageId` (published locally). Unknown: nothing happens. */
  delIncoming(messageId: number): void | Promise<void>;
  /**
   * `delIncoming` as a write the store applies with a session batch (the local publish of
   * that message), atomically; undefined for a queue whose store cannot.
   */
  incomingDeletion(messageId: number): BatchRider | undefined;
  close(): void | Promise<void>;
}

/**
 * For queues that keep their live seqs in a Set (oldest first, insertion
 * order): forget the oldest past `max`; returns their seqs, oldest first.
 */
export function dropOldest(live: Set<number>, max: number): number[] {
  const out: number[] = [];
  for (const seq of live) {
    if (live.size <= max) break;
    live.delete(seq);
    out.push(seq);
  }
  return out;
}

interface Slot {
  message: QueuedOutbound;
  removed: boolean;
}

/**
 * In memory: a FIFO array with a moving head. Removed messages in the middle
 * (out-of-order acknowledgements) are marked and skipped; the array is
 * compacted when its dead head grows past half of it.
 */
export class MemoryBridgeQueue implements BridgeQueue {
  private slots: Slot[] = [];
  private head = 0;
  private live = 0;
  private nextSeq = 1;
  private readonly bySeq = new Map<number, Slot>();
  private readonly records = new Map<number, InflightRecord>();
  private readonly received = new Map<number, IncomingRecord>();

  constructor(readonly max: number) {}

  incoming(): IncomingRecord[] {
    return [...this.received.values()];
  }

  putIncoming(r: IncomingRecord): void {
    this.received.set(r.messageId, { ...r });
  }

  delIncoming(messageId: number): void {
    this.received.delete(messageId);
  }

  incomingDeletion(_messageId: number): undefined {
    return undefined; // nothing of it outlives the process
  }

  inflight(): InflightRecord[] {
    return [...this.records.values()];
  }

  putInflight(r: InflightRecord): void {
    this.records.set(r.messageId, { ...r });
  }

  complete(messageId: number): void {
    const r = this.records.get(messageId);
    if (!r) return;
    this.records.delete(messageId);
    this.remove(r.seq);
  }

  push(message: OutboundMessage): number {
    const slot: Slot = { message: { ...message, seq: this.nextSeq++ }, removed: false };
    this.slots.push(slot);
    this.bySeq.set(slot.message.seq, slot);
    this.live++;
    let dropped = 0;
    while (this.live > this.max) {
      const oldest = this.slots[this.head];
      if (!oldest.removed) {
        this.drop(oldest);
        dropped++;
      }
      this.advance();
    }
    return dropped;
  }

  peek(after: number, max: number): QueuedOutbound[] {
    const out: QueuedOutbound[] = [];
    for (let i = this.firstAfter(after); i < this.slots.length && out.length < max; i++) {
      const s = this.slots[i];
      if (!s.removed) out.push(s.message);
    }
    return out;
  }

  remove(seq: number): void {
    const slot = this.bySeq.get(seq);
    if (!slot) return;
    this.drop(slot);
    while (this.head < this.slots.length && this.slots[this.head].removed) this.advance();
  }

  size(): number {
    return this.live;
  }

  close(): void {
    this.slots = [];
    this.bySeq.clear();
    this.records.clear();
    this.received.clear();
    this.head = 0;
    this.live = 0;
  }

  private drop(slot: Slot): void {
    slot.removed = true;
    this.bySeq.delete(slot.message.seq);
    this.live--;
  }

  private advance(): void {
    this.head++;
    if (this.head === this.slots.length) {
      this.slots = [];
      this.head = 0;
    } else if (this.head > 1024 && this.head * 2 > this.slots.length) {
      this.slots = this.slots.slice(this.head);
      this.head = 0;
    }
  }

  /** Index of the first slot with seq > after (slots are sorted by seq). */
  private firstAfter(after: number): number {
    let lo = this.head, hi = this.slots.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.slots[mid].message.seq <= after) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }
}
