/**
 * MQTT.js's `incomingStore` for a bridge, kept in the bridge's queue: each
 * QoS 2 message from the upstream between PUBREC and PUBREL, across the fresh
 * MQTT.js client of each connection and, with a durable queue (SQLite, Redis),
 * across a restart or a kill -9 of mqttx.
 *
 * Why: MQTT.js keeps these in memory per client, yet its PUBREC tells the
 * upstream the message is ours now (acknowledged means kept): the upstream
 * then only sends PUBREL, never the message again. MQTT.js calls `put` and
 * writes PUBREC only once `put` called back (the record is stored); on PUBREL
 * it reads the message back with `get`, publishes it locally (the bridge's
 * `handleMessage`, which waits for the local store) and then sends PUBCOMP and
 * calls `del`. With `clean-start: false` the upstream sends a PUBREL again
 * after a reconnect [MQTT-4.4.0-1], so the message is published locally once.
 */
import { Readable } from "node:stream";
import type { QoS } from "../mqtt/packet.ts";
import type { BatchRider } from "../store/types.ts";
import type { BridgeQueue, IncomingRecord } from "./mqtt_queue.ts";
import { type Done, publishPacket, settle, type StorePacket } from "./mqtt_store.ts";

export class BridgeIncomingStore {
  /** By packet id. */
  private readonly records = new Map<number, IncomingRecord>();

  constructor(private readonly queue: BridgeQueue) {}

  /** The records of the last run (a durable queue's). */
  async load(): Promise<void> {
    for (const r of await this.queue.incoming()) this.records.set(r.messageId, r);
  }

  get size(): number {
    return this.records.size;
  }

  /** The records kept now, oldest packet first as far as known (for a lost upstream session). */
  all(): IncomingRecord[] {
    return [...this.records.values()];
  }

  put(packet: StorePacket, cb: Done): this {
    const p = packet.payload ?? new Uint8Array(0);
    const r: IncomingRecord = {
      messageId: packet.messageId!,
      topic: String(packet.topic),
      payload: typeof p === "string" ? new TextEncoder().encode(p) : new Uint8Array(p),
      qos: (packet.qos ?? 2) as QoS,
      retain: packet.retain === true,
    };
    this.records.set(r.messageId, r);
    // PUBREC goes out only after the callback: never for a message that was not stored.
    settle(this.queue.putIncoming(r), (err) => {
      if (err) this.records.delete(r.messageId);
      cb(err);
    });
    return this;
  }

  get(packet: Pick<StorePacket, "messageId">, cb: Done): this {
    const r = this.records.get(packet.messageId!);
    if (!r) return (cb(new Error("missing packet")), this);
    cb(undefined, packetOf(r));
    return this;
  }

  /** The message was published locally (the bridge already deleted it; see `forget`). */
  del(packet: Pick<StorePacket, "messageId">, cb: Done): this {
    void this.forget(packet.messageId!);
    cb(undefined, packet as StorePacket);
    return this;
  }

  /**
   * The record's deletion as a write to go with the session batch of its local publish
   * (`BatchRider`): stored together, a crash neither loses the message nor publishes it again.
   */
  deletion(messageId: number): BatchRider | undefined {
    return this.queue.incomingDeletion(messageId);
  }

  /**
   * Delete the record; resolves once the deletion is stored (already, when `with` was applied
   * with the batch that stored its local publish).
   */
  forget(messageId: number, withBatch?: BatchRider): Promise<void> {
    if (!this.records.delete(messageId) || withBatch?.applied) return Promise.resolve();
    return new Promise((resolve, reject) =>
      settle(this.queue.delIncoming(messageId), (e) => e ? reject(e) : resolve())
    );
  }

  /** MQTT.js resends nothing of the incoming side on connect. */
  createStream(): Readable {
    return Readable.from([], { objectMode: true });
  }

  close(cb?: Done): void {
    // The records outlive the MQTT.js client: the next connection's PUBREL finds them.
    cb?.();
  }
}

export function packetOf(r: IncomingRecord): StorePacket {
  return publishPacket(r, r.messageId, false);
}
