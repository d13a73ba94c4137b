/**
 * How the Redis store lays out and encodes its data. Key names start with the
 * original's `redis.*` prefixes (config), and every key of one client carries
 * the hash tag `{client-id}`, so one client's update touches one slot even on
 * Redis Cluster. Binary payloads are stored as bytes, the rest as short JSON.
 */
import { Buffer } from "node:buffer";
import type { MqttxConfig } from "../config/types.ts";
import type {
  MessageData,
  SessionMeta,
  StoredDelivery,
  StoredInflight,
  StoredMessage,
  StoredSubscription,
  StoredWill,
} from "./types.ts";

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
  /** Hash: the retained message of a topic (m, p). */
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

/** JSON with Uint8Array values (correlation data) as {"$b": base64}. */
export function toJson(v: unknown): string {
  return JSON.stringify(v, (_k, x) => {
    if (x instanceof Uint8Array) return { $b: Buffer.from(x).toString("base64") };
    // JSON.stringify turns a Buffer into {type, data} before the replacer sees it.
    if (x && x.type === "Buffer" && Array.isArray(x.data)) {
      return { $b: Buffer.from(x.data).toString("base64") };
    }
    return x;
  });
}

export function fromJson<T>(s: string): T {
  return JSON.parse(s, (_k, x) => {
    if (x && typeof x === "object" && typeof x.$b === "string" && Object.keys(x).length === 1) {
      return new Uint8Array(Buffer.from(x.$b, "base64"));
    }
    return x;
  });
}

export function bytes(b: Uint8Array): Buffer {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength);
}

/** Copy out of a reply buffer (which may share a large pooled allocation). */
export function ownBytes(b: Uint8Array | undefined): Uint8Array {
  return b ? new Uint8Array(b) : new Uint8Array(0);
}

interface MessageFields {
  t: string;
  q: 0 | 1 | 2;
  r?: 1;
  P?: MessageData["properties"];
  x?: number;
  f?: string;
}

export function encodeMessageFields(m: MessageData): string {
  const f: MessageFields = { t: m.topic, q: m.qos };
  if (m.retain) f.r = 1;
  if (m.properties !== undefined) f.P = m.properties;
  if (m.expiresAt !== undefined) f.x = m.expiresAt;
  if (m.from !== undefined) f.f = m.from;
  return toJson(f);
}

export function decodeMessage(fields: string, payload: Uint8Array): MessageData {
  const f = fromJson<MessageFields>(fields);
  const m: { -readonly [K in keyof MessageData]: MessageData[K] } = {
    topic: f.t,
    payload,
    qos: f.q,
    retain: f.r === 1,
  };
  if (f.P !== undefined) m.properties = f.P;
  if (f.x !== undefined) m.expiresAt = f.x;
  if (f.f !== undefined) m.from = f.f;
  return m;
}

export function decodeStoredMessage(
  id: string,
  fields: string,
  payload: Uint8Array,
): StoredMessage {
  return { id, ...decodeMessage(fields, payload) };
}

interface DeliveryFields {
  m?: string;
  q: 1 | 2;
  r?: 1;
  s?: readonly number[];
  g?: string;
}

export function encodeDelivery(d: StoredDelivery, withId: boolean): string {
  const f: DeliveryFields = { q: d.qos };
  if (withId) f.m = d.messageId;
  if (d.retain) f.r = 1;
  if (d.subscriptionIds?.length) f.s = d.subscriptionIds;
  if (d.share !== undefined) f.g = d.share;
  return JSON.stringify(f);
}

export function decodeDelivery(messageId: string | undefined, s: string): StoredDelivery {
  const f = JSON.parse(s) as DeliveryFields;
  const d: { -readonly [K in keyof StoredDelivery]: StoredDelivery[K] } = {
    messageId: messageId ?? f.m!,
    qos: f.q,
    retain: f.r === 1,
  };
  if (f.s) d.subscriptionIds = f.s;
  if (f.g !== undefined) d.share = f.g;
  return d;
}

export function decodeInflight(packetId: number, s: string, released: boolean): StoredInflight {
  return { ...decodeDelivery(undefined, s), packetId, released };
}

export function encodeSubscription(s: StoredSubscription): string {
  return toJson(s);
}

export function decodeSubscription(s: string): StoredSubscription {
  return fromJson<StoredSubscription>(s);
}

/** Session meta as hash fields (absent optional values are absent fields). */
export function encodeMeta(m: SessionMeta): (string | Buffer)[] {
  const out: (string | Buffer)[] = [
    "c",
    m.clientId,
    "v",
    String(m.protocolVersion),
    "e",
    String(m.expiryInterval),
  ];
  if (m.username !== undefined) out.push("u", m.username);
  if (m.expiresAt !== undefined) out.push("x", String(m.expiresAt));
  if (m.willAt !== undefined) out.push("wa", String(m.willAt));
  if (m.will !== undefined) {
    out.push("w", toJson({ m: encodeMessageFields(m.will), d: m.will.delayInterval }));
    out.push("wp", bytes(m.will.payload));
  }
  return out;
}

export function decodeMeta(h: Record<string, Uint8Array>): SessionMeta {
  const str = (k: string) => (h[k] === undefined ? undefined : new TextDecoder().decode(h[k]));
  const num = (k: string) => (h[k] === undefined ? undefined : Number(str(k)));
  const meta: { -readonly [K in keyof SessionMeta]: SessionMeta[K] } = {
    clientId: str("c")!,
    protocolVersion: num("v") as SessionMeta["protocolVersion"],
    expiryInterval: num("e")!,
  };
  if (h.u !== undefined) meta.username = str("u");
  if (h.x !== undefined) meta.expiresAt = num("x");
  if (h.wa !== undefined) meta.willAt = num("wa");
  if (h.w !== undefined) {
    const w = fromJson<{ m: string; d: number }>(str("w")!);
    const will: StoredWill = { ...decodeMessage(w.m, ownBytes(h.wp)), delayInterval: w.d };
    meta.will = will;
  }
  return meta;
}
