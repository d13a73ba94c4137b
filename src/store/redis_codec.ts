/**
 * How the Redis store lays out and encodes its data. Key names start with the
 * original's `redis.*` prefixes (config), and every key of one client carries
 * the hash tag `{client-id}`, so one client's update touches one slot even on
 * Redis Cluster. Binary payloads are stored as bytes, the rest as short JSON
 * (codec.ts).
 */
import { Buffer } from "node:buffer";
import type { MqttxConfig } from "../config/types.ts";
import type { SessionMeta } from "./types.ts";
import { decodeMetaFields, encodeMetaFields, type MetaFields } from "./codec.ts";

export type RedisKeyPrefixes = Omit<MqttxConfig["redis"], "url">;

/**
 * Each per-client key is `prefix{clientId}`; two prefixes that share a start
 * differ at the character where one has `{`, so no two clients' keys collide.
 */
export class RedisKeys {
  constructor(readonly p: RedisKeyPrefixes) {}
  /** Hash: the session's meta (client id, user, protocol, expiry, will). */
  session(clientId: string): string {
    return `${this.p.clusterSessionHashKey}:{${clientId}}`;
  }
  /** SCAN pattern matching every session key. */
  sessionPattern(): string {
    return `${escapeGlob(this.p.clusterSessionHashKey + ":")}{*`;
  }
  /** The client id in a key made by `session()`. */
  clientIdOf(sessionKey: string): string {
    return sessionKey.slice(this.p.clusterSessionHashKey.length + 2, -1);
  }
  /** Hash: filter → subscription. */
  subscriptions(clientId: string): string {
    return `${this.p.clientTopicSetPrefix}{${clientId}}`;
  }
  /** Hash: message id → queued delivery. */
  queue(clientId: string): string {
    return `${this.p.pubMsgSetPrefix}q:{${clientId}}`;
  }
  /** Hash: packet id → in-flight delivery (the original's unacknowledged PUBLISH set). */
  inflight(clientId: string): string {
    return `${this.p.pubMsgSetPrefix}{${clientId}}`;
  }
  /** Set: packet ids whose PUBREL was sent (the original's PUBREL set). */
  released(clientId: string): string {
    return `${this.p.pubRelMsgSetPrefix}{${clientId}}`;
  }
  /** Set: inbound QoS 2 packet ids awaiting PUBREL. */
  incoming(clientId: string): string {
    return `${this.p.pubRelMsgSetPrefix}in:{${clientId}}`;
  }
  /** String: the last packet id used. */
  packetId(clientId: string): string {
    return `${this.p.messageIdPrefix}{${clientId}}`;
  }
  /** Every key of one client: the queue and in-flight hashes first. */
  allOf(clientId: string): string[] {
    return [
      this.queue(clientId),
      this.inflight(clientId),
      this.session(clientId),
      this.subscriptions(clientId),
      this.released(clientId),
      this.incoming(clientId),
      this.packetId(clientId),
    ];
  }
  /** Hash: a stored message (m: fields, p: payload, n: reference count). */
  message(id: string): string {
    return `${this.p.msgPayLoadKey}:${id}`;
  }
  messagePattern(): string {
    return `${escapeGlob(this.p.msgPayLoadKey + ":")}*`;
  }
  /** Hash: the retained message of a topic (m, p, v: its version; absent in older data: 0). */
  retained(topic: string): string {
    return this.p.retainMessagePrefix + topic;
  }
  /**
   * Hash with no message: present while Redis holds the retained set (gone: Redis lost its data).
   * The key of the empty topic, which no MQTT topic is [MQTT-4.7.3-1].
   */
  retainedMarker(): string {
    return this.p.retainMessagePrefix;
  }
  /**
   * Hash with no message: field `n` is the version the last retained change got
   * (retained_versions.ts). The key of the topic `#`, which no topic name is [MQTT-3.3.2-2].
   */
  retainedVersions(): string {
    return this.p.retainMessagePrefix + "#";
  }
  retainedPattern(): string {
    return `${escapeGlob(this.p.retainMessagePrefix)}*`;
  }
  topicOf(retainedKey: string): string {
    return retainedKey.slice(this.p.retainMessagePrefix.length);
  }
}

function escapeGlob(s: string): string {
  return s.replace(/[*?[\]\\]/g, (c) => "\\" + c);
}

export function bytes(b: Uint8Array): Buffer {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength);
}

/** Copy out of a reply buffer (which may share a large pooled allocation). */
export function ownBytes(b: Uint8Array | undefined): Uint8Array {
  return b ? new Uint8Array(b) : new Uint8Array(0);
}

/** Session meta as hash fields (absent optional values are absent fields). */
export function encodeMeta(m: SessionMeta): (string | Buffer)[] {
  const f = encodeMetaFields(m);
  const out: (string | Buffer)[] = ["c", f.c, "v", String(f.v), "e", String(f.e)];
  if (f.u !== undefined) out.push("u", f.u);
  if (f.x !== undefined) out.push("x", String(f.x));
  if (f.wa !== undefined) out.push("wa", String(f.wa));
  if (f.w !== undefined) {
    out.push("w", JSON.stringify({ m: f.w, d: f.wd }), "wp", bytes(m.will!.payload));
  }
  return out;
}

export function decodeMeta(h: Record<string, Uint8Array>): SessionMeta {
  const str = (k: string) => (h[k] === undefined ? undefined : new TextDecoder().decode(h[k]));
  const num = (k: string) => (h[k] === undefined ? undefined : Number(str(k)));
  const f: MetaFields = {
    c: str("c")!,
    v: num("v") as MetaFields["v"],
    e: num("e")!,
    u: str("u"),
    x: num("x"),
    wa: num("wa"),
  };
  if (h.w !== undefined) {
    const w = JSON.parse(str("w")!) as { m: string; d: number };
    (f.w = w.m), (f.wd = w.d);
  }
  return decodeMetaFields(f, ownBytes(h.wp));
}
