/**
 * A bridge's outbound queue in Redis (the Redis store's client): what was
 * queued for an unreachable upstream survives a restart (and a kill -9) of
 * mqttx, as far as Redis keeps its data (its `appendonly`/`appendfsync`).
 *
 * One sorted set per bridge, `mqttx:bridge:{name}:queue`: the score is the
 * sequence number, the member the whole message (the seq first, so members are
 * unique), so reading forward from a cursor is one ZRANGE BYSCORE and a removal
 * one ZREMRANGEBYSCORE. A push resolves once Redis has the message; the bridge
 * plugin hands that promise to the broker, which acknowledges the local
 * publisher only then. While Redis is unreachable a push fails at once (the
 * client has no offline queue): the publisher gets no PUBACK, as with the
 * session store. As on SQLite, the live seqs are also kept in memory (oldest
 * first), which gives `size()` and the drop-oldest bound without a query.
 */
import { Buffer } from "node:buffer";
import type { RedisClient } from "../store/redis_client.ts";
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

/** Push and drop the oldest in one step (one round trip, atomic). */
const PUSH_AND_TRIM = `redis.call('ZADD', KEYS[1], ARGV[1], ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[3])
return 1`;

/** The queued seqs, oldest first, without the messages (a restart reads only these). */
const SEQS = `local r = redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')
local out = {}
for i = 2, #r, 2 do out[#out + 1] = r[i] end
return out`;

/** The in-flight records as a flat [packet id, "seq:released", ...] list. */
const RECORDS = `return redis.call('HGETALL', KEYS[1])`;

/** A completed packet id: its record and its message go in one step. */
const COMPLETE = `redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[2], ARGV[2], ARGV[2])
return 1`;

/** Header of a member: seq (float64), qos, retain, topic length (uint32). */
const HEADER = 14;

export function bridgeQueueKey(bridge: string): string {
  return `mqttx:bridge:{${bridge}}:queue`;
}

/** Hash: packet id → "seq:released" of the messages in flight upstream. */
export function bridgeInflightKey(bridge: string): string {
  return `mqttx:bridge:{${bridge}}:inflight`;
}

/** Hash: packet id → the incoming QoS 2 message (encoded as a queued one, seq = packet id). */
export function bridgeIncomingKey(bridge: string): string {
  return `mqttx:bridge:{${bridge}}:incoming`;
}

export function encodeQueued(m: QueuedOutbound): Buffer {
  const topic = Buffer.from(m.topic, "utf8");
  const out = Buffer.allocUnsafe(HEADER + topic.length + m.payload.byteLength);
  out.writeDoubleBE(m.seq, 0);
  out[8] = m.qos;
  out[9] = m.retain ? 1 : 0;
  out.writeUInt32BE(topic.length, 10);
  topic.copy(out, HEADER);
  out.set(m.payload, HEADER + topic.length);
  return out;
}

export function decodeQueued(b: Buffer): QueuedOutbound {
  const topicEnd = HEADER + b.readUInt32BE(10);
  return {
    seq: b.readDoubleBE(0),
    qos: b[8] as QoS,
    retain: b[9] === 1,
    topic: b.toString("utf8", HEADER, topicEnd),
    // Its own bytes: the reply buffer may be a view into a larger one.
    payload: new Uint8Array(b.subarray(topicEnd)),
  };
}

export class RedisBridgeQueue implements BridgeQueue {
  /** Live seqs, oldest first (a Set iterates in insertion order). */
  private readonly live = new Set<number>();
  private nextSeq = 1;
  private readonly key: string;
  private readonly inflightKey: string;
  private readonly incomingKey: string;
  /** Packet id → seq of the in-flight records (to delete the message with its record). */
  private readonly inflightSeq = new Map<number, number>();

  private constructor(
    private readonly client: RedisClient,
    bridge: string,
    private readonly max: number,
  ) {
    this.key = bridgeQueueKey(bridge);
    this.inflightKey = bridgeInflightKey(bridge);
    this.incomingKey = bridgeIncomingKey(bridge);
  }

  /** Load the seqs still queued (a restart), and drop the oldest past a smaller `max`. */
  static async open(client: RedisClient, bridge: string, max: number): Promise<RedisBridgeQueue> {
    const q = new RedisBridgeQueue(client, bridge, max);
    const seqs: unknown[] = await client.sendCommand(["EVAL", SEQS, "1", q.key]);
    for (const s of seqs) q.live.add(Number(String(s)));
    for (const s of q.live) q.nextSeq = s + 1; // the last one is the highest
    const over = q.trim();
    if (over.length > 0) {
      await client.sendCommand(["ZREMRANGEBYSCORE", q.key, "-inf", String(over[over.length - 1])]);
    }
    return q;
  }

  async push(m: OutboundMessage): Promise<number> {
    const seq = this.nextSeq++;
    this.live.add(seq);
    const dropped = this.trim();
    const member = encodeQueued({ ...m, seq });
    try {
      if (dropped.length === 0) {
        await this.client.sendCommand(["ZADD", this.key, String(seq), member]);
      } else {
        // The dropped are the oldest live ones: everything up to the last of them goes.
        const upTo = String(dropped[dropped.length - 1]);
        await this.client.sendCommand([
          "EVAL",
          PUSH_AND_TRIM,
          "1",
          this.key,
          String(seq),
          member,
          upTo,
        ]);
      }
    } catch (e) {
      this.live.delete(seq); // not stored: never sent (the publisher was not acknowledged)
      throw e;
    }
    return dropped.length;
  }

  /** Up to `max` stored messages after `after` (a push still on its way is read once it resolved). */
  async peek(after: number, max: number): Promise<QueuedOutbound[]> {
    const out: QueuedOutbound[] = [];
    let from = after;
    while (out.length < max) {
      const want = max - out.length;
      const rows: Buffer[] = await this.client.sendCommand([
        "ZRANGE",
        this.key,
        `(${from}`,
        "+inf",
        "BYSCORE",
        "LIMIT",
        "0",
        String(want),
      ]);
      for (const r of rows) {
        const m = decodeQueued(r);
        from = m.seq;
        // A message whose removal did not reach Redis is skipped here (it is not live).
        if (this.live.has(m.seq)) out.push(m);
      }
      if (rows.length < want) break;
    }
    return out;
  }

  async remove(seq: number): Promise<void> {
    if (!this.live.delete(seq)) return;
    await this.client.sendCommand(["ZREMRANGEBYSCORE", this.key, String(seq), String(seq)]);
  }

  size(): number {
    return this.live.size;
  }

  async inflight(): Promise<InflightRecord[]> {
    const flat: unknown[] = await this.client.sendCommand(["EVAL", RECORDS, "1", this.inflightKey]);
    const out: InflightRecord[] = [];
    for (let i = 0; i + 1 < flat.length; i += 2) {
      const [seq, released] = String(flat[i + 1]).split(":");
      const r = {
        messageId: Number(String(flat[i])),
        seq: Number(seq),
        released: released === "1",
      };
      this.inflightSeq.set(r.messageId, r.seq);
      out.push(r);
    }
    return out;
  }

  async putInflight(r: InflightRecord): Promise<void> {
    this.inflightSeq.set(r.messageId, r.seq);
    await this.client.sendCommand([
      "HSET",
      this.inflightKey,
      String(r.messageId),
      `${r.seq}:${r.released ? 1 : 0}`,
    ]);
  }

  async complete(messageId: number): Promise<void> {
    const seq = this.inflightSeq.get(messageId);
    if (seq === undefined) return;
    this.inflightSeq.delete(messageId);
    this.live.delete(seq);
    await this.client.sendCommand([
      "EVAL",
      COMPLETE,
      "2",
      this.inflightKey,
      this.key,
      String(messageId),
      String(seq),
    ]);
  }

  async incoming(): Promise<IncomingRecord[]> {
    const flat: unknown[] = await this.client.sendCommand(["EVAL", RECORDS, "1", this.incomingKey]);
    const out: IncomingRecord[] = [];
    for (let i = 1; i < flat.length; i += 2) {
      const { seq, ...m } = decodeQueued(Buffer.from(flat[i] as Uint8Array));
      out.push({ ...m, messageId: seq });
    }
    return out;
  }

  async putIncoming(r: IncomingRecord): Promise<void> {
    const { messageId, ...m } = r;
    const value = encodeQueued({ ...m, seq: messageId });
    await this.client.sendCommand(["HSET", this.incomingKey, String(messageId), value]);
  }

  async delIncoming(messageId: number): Promise<void> {
    await this.client.sendCommand(["HDEL", this.incomingKey, String(messageId)]);
  }

  incomingDeletion(messageId: number): BatchRider {
    return { redis: [["HDEL", this.incomingKey, String(messageId)]] };
  }

  close(): void {
    // The client belongs to the store, which closes it.
  }

  /** Forget the oldest past the bound; returns their seqs, oldest first. */
  private trim(): number[] {
    return dropOldest(this.live, this.max);
  }
}
