/**
 * MQTT.js's `outgoingStore` for a bridge, kept in the bridge's queue: the
 * packet id of every QoS 2 message handed to the upstream, and whether its
 * PUBREL went out, live as long as the message is not completed, across the
 * fresh MQTT.js client of each connection and, with a durable queue (SQLite,
 * Redis), across a restart or a kill -9 of mqttx.
 *
 * Why: MQTT.js keeps this state in memory per client. Without it, a message
 * in flight when the link broke or mqttx crashed is sent again under a new
 * packet id, which the upstream cannot tell from a new message (a QoS 2
 * duplicate), and the old id stays half-done in the upstream's session (on
 * Mosquitto, enough of them use up its receive quota and the bridge stalls).
 * With it, MQTT.js sends the same packet again on the next connection (PUBLISH
 * with DUP, or only PUBREL once PUBREC came) [MQTT-4.4.0-1], before anything
 * new; the upstream recognises the id, so QoS 2 stays exactly once.
 *
 * Order of writes: MQTT.js writes a PUBLISH or PUBREL only after `put` called
 * back, which is after the record is stored; `del` (PUBCOMP) removes the
 * record and the message from the queue in one step, so a crash keeps both
 * or neither. QoS 1 messages are not recorded (at least once either way).
 */
import { Readable } from "node:stream";
import type { BridgeQueue, InflightRecord } from "./mqtt_queue.ts";
import { type Done, publishPacket, settle, type StorePacket } from "./mqtt_store.ts";

export class BridgeOutgoingStore {
  /** By packet id. */
  private readonly records = new Map<number, InflightRecord>();
  /** Seqs of the records: the pump does not send these (MQTT.js sends them again). */
  private readonly seqs = new Set<number>();
  /** The seq of the message being published right now (set around `client.publish`). */
  sending: number | undefined;

  constructor(private readonly queue: BridgeQueue) {}

  /** The records of the last run (a durable queue's). */
  async load(): Promise<void> {
    for (const r of await this.queue.inflight()) this.add(r);
  }

  /** Whether the message `seq` is in flight under a packet id (MQTT.js owns it). */
  has(seq: number): boolean {
    return this.seqs.has(seq);
  }

  get size(): number {
    return this.records.size;
  }

  /**
   * The upstream session is gone (CONNACK without session present): what was
   * released there is lost, so it is sent as a PUBLISH again, not as a PUBREL.
   */
  sessionLost(): void {
    for (const r of this.records.values()) {
      if (r.released) settle(this.queue.putInflight({ ...r, released: false }), () => {});
      r.released = false;
    }
  }

  put(packet: StorePacket, cb: Done): this {
    const id = packet.messageId!;
    let record: InflightRecord | undefined;
    // QoS 2 only: QoS 1 is at least once anyway, and each record costs a commit before the send.
    if (packet.cmd === "publish" && packet.qos === 2 && this.sending !== undefined) {
      record = { messageId: id, seq: this.sending, released: false };
      this.add(record);
    } else if (packet.cmd === "pubrel" && this.records.has(id)) {
      record = this.records.get(id)!;
      record.released = true;
    }
    // QoS 1, or not ours: MQTT.js sends it; at least once, as without this store.
    if (!record) return (cb(), this);
    const r = record;
    settle(this.queue.putInflight({ ...r }), (err) => {
      if (err && packet.cmd === "publish") this.forget(id);
      cb(err);
    });
    return this;
  }

  get(packet: Pick<StorePacket, "messageId">, cb: Done): this {
    const r = this.records.get(packet.messageId!);
    if (!r) return (cb(new Error("missing packet")), this);
    void this.packetOf(r).then((p) => cb(p ? undefined : new Error("missing packet"), p));
    return this;
  }

  del(packet: Pick<StorePacket, "messageId">, cb: Done): this {
    const id = packet.messageId!;
    if (!this.records.has(id)) return (cb(undefined, packet as StorePacket), this);
    this.forget(id);
    // No need to wait: the queue's writes are applied in order, so the id's next record comes
    // after this; a crash first only means PUBREL again, which the upstream answers with PUBCOMP.
    void settle(this.queue.complete(id), () => {});
    cb(undefined, packet as StorePacket);
    return this;
  }

  /** What MQTT.js sends first on a new connection: the records, oldest message first. */
  createStream(): Readable {
    const records = [...this.records.values()].sort((a, b) => a.seq - b.seq);
    return Readable.from(this.replay(records), { objectMode: true });
  }

  private async *replay(records: InflightRecord[]): AsyncGenerator<StorePacket> {
    for (const r of records) {
      if (!this.records.has(r.messageId)) continue;
      const p = await this.packetOf(r);
      if (p) yield p;
      else await settle(this.queue.complete(r.messageId), () => {}); // dropped meanwhile
    }
  }

  close(cb?: Done): void {
    // The records outlive the MQTT.js client: the next connection's client sends them again.
    cb?.();
  }

  private add(r: InflightRecord): void {
    this.records.set(r.messageId, r);
    this.seqs.add(r.seq);
  }

  private forget(messageId: number): void {
    const r = this.records.get(messageId);
    if (!r) return;
    this.records.delete(messageId);
    this.seqs.delete(r.seq);
  }

  /** The packet to send again: PUBREL once released, else the PUBLISH from the queue (DUP). */
  private async packetOf(r: InflightRecord): Promise<StorePacket | undefined> {
    if (r.released) return { cmd: "pubrel", qos: 2, messageId: r.messageId };
    const [m] = await this.queue.peek(r.seq - 1, 1);
    if (!m || m.seq !== r.seq) {
      this.forget(r.messageId); // dropped from the queue (queue-max): nothing to send
      return undefined;
    }
    return publishPacket(m, r.messageId, true);
  }
}
