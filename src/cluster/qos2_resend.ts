/**
 * QoS 2 never twice across nodes when its 3.1.1 publisher sends it again.
 *
 * A QoS 2 message forwarded to another node is acknowledged (PUBREC) only once
 * that node stored it (acks.ts). If the answer does not come in time, a 3.1.1
 * publisher is closed (it cannot be refused otherwise) and must send the
 * message again with the same packet id [MQTT-4.4.0-1] — MQTT.js does, without
 * the DUP flag. The other node may still store the first copy: it was slow, or
 * it was down and reads its Kafka topic when it is back. So the sending node
 * remembers, per publisher and packet id, the ack id of a QoS 2 forward that
 * failed and the message's topic and payload (a hash); the next message with
 * that packet id, topic and payload is that resend, forwarded with `resendOf`
 * set to the first ack id (anything else with the id is a new message and
 * forgets it). The receiving node remembers the QoS 2 messages it took (per
 * sending node, the last RECEIVED_MAX; and across its restarts in a Qos2Memory,
 * qos2_memory.ts) and does not deliver a resend of one it has again; it still
 * answers, so the publisher gets its PUBREC.
 *
 * A 5.0 publisher is told 0x80 and its flow ends there: what it sends next is a
 * new message. Bounded: FAILED_MAX remembered failures (oldest forgotten first).
 */
import type { Message } from "../broker/message.ts";
import type { BusMessage, NodeId } from "./types.ts";
import { type Qos2Memory, RECEIVED_MAX } from "./qos2_memory.ts";

const FAILED_MAX = 10_000;

/** `take`'s answer for a QoS 2 message this node has taken already. */
export const AGAIN = "again";

type Publish = Extract<BusMessage, { kind: "publish" }>;

interface Failed {
  /** The first forward's ack id. */
  readonly id: number;
  readonly topic: string;
  readonly length: number;
  readonly hash: number;
}

export class Qos2Resends {
  /** "clientId\0packetId" → the first forward that was not answered in time. */
  private readonly failed = new Map<string, Failed>();
  /** Per sending node: the ids of QoS 2 messages taken here (first forward's ack id). */
  private readonly received = new Map<NodeId, Set<number>>();

  constructor(private readonly memory?: Qos2Memory) {}

  /** Before receiving: what this broker-id's earlier runs took. */
  async recall(): Promise<void> {
    for (const [node, id] of (await this.memory?.recall()) ?? []) this.add(node, id);
  }

  /**
   * A client's QoS 2 message about to be forwarded with ack id `ack`: the first forward's id
   * if it is a resend of one that failed; remembers this one if it fails.
   */
  sending(message: Message, ack: number, stored: Promise<void>): number | undefined {
    const packetId = message.qos2PacketId;
    if (packetId === undefined || message.from === undefined) return undefined;
    const key = message.from + "\0" + packetId;
    const before = this.failed.get(key);
    this.failed.delete(key);
    const payload = message.payload;
    const hash = fnv1a(payload);
    const again = before !== undefined && before.topic === message.topic &&
      before.length === payload.length && before.hash === hash;
    const id = again ? before.id : ack;
    stored.then(() => {}, () => {
      this.failed.set(key, { id, topic: message.topic, length: payload.length, hash });
      if (this.failed.size > FAILED_MAX) this.failed.delete(this.failed.keys().next().value!);
    });
    return again ? id : undefined;
  }

  /**
   * `msg` from `node`: AGAIN when it is a QoS 2 message this node has taken already; else
   * taken now, and for a QoS 2 message kept in the memory: the promise that it is.
   */
  take(node: NodeId, msg: Publish): typeof AGAIN | Promise<void> | undefined {
    if (msg.message.qos !== 2 || msg.ack === undefined) return undefined;
    const id = msg.resendOf ?? msg.ack;
    if (!this.add(node, id)) return AGAIN;
    return this.memory?.remember(node, id);
  }

  /** False when it was there already. */
  private add(node: NodeId, id: number): boolean {
    let ids = this.received.get(node);
    if (!ids) this.received.set(node, ids = new Set());
    if (ids.has(id)) return false;
    ids.add(id);
    if (ids.size > RECEIVED_MAX) ids.delete(ids.values().next().value!);
    return true;
  }
}

/** Resolves once both are (either may be absent). */
export function bothKept(
  a: Promise<void> | undefined,
  b: Promise<void> | undefined,
): Promise<void> | undefined {
  return a && b ? Promise.all([a, b]).then(() => {}) : a ?? b;
}

/** 32-bit FNV-1a: tells a resend from a new message with the same packet id and topic. */
function fnv1a(b: Uint8Array): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < b.length; i++) h = Math.imul(h ^ b[i], 0x01000193);
  return h >>> 0;
}
