/**
 * The stored form of messages, deliveries, subscriptions and session meta,
 * shared by the SQLite store (JSON in columns), the Redis store (hash fields)
 * and the cluster's frames: short JSON with one-letter keys, binary property
 * values as {"$b": base64}, payloads kept apart as bytes. Records written by
 * earlier versions must keep reading (tests/store_format_test.ts).
 */
import { Buffer } from "node:buffer";
import type {
  MessageData,
  SessionMeta,
  StoredDelivery,
  StoredInflight,
  StoredMessage,
  StoredSubscription,
} from "./types.ts";

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

/**
 * Session meta as flat fields, the same keys in both stores: SQLite keeps
 * them as one JSON column, Redis as one hash field each (numbers as decimal
 * strings, the will's `w` and `wd` together as `w: {"m", "d"}`). The will's
 * payload is stored apart (a BLOB column, the hash field `wp`).
 */
export interface MetaFields {
  c: string;
  v: SessionMeta["protocolVersion"];
  e: number;
  u?: string;
  x?: number;
  wa?: number;
  /** The will's message fields (encodeMessageFields) and its delay. */
  w?: string;
  wd?: number;
}

export function encodeMetaFields(m: SessionMeta): MetaFields {
  const f: MetaFields = { c: m.clientId, v: m.protocolVersion, e: m.expiryInterval };
  if (m.username !== undefined) f.u = m.username;
  if (m.expiresAt !== undefined) f.x = m.expiresAt;
  if (m.willAt !== undefined) f.wa = m.willAt;
  if (m.will) (f.w = encodeMessageFields(m.will)), (f.wd = m.will.delayInterval);
  return f;
}

export function decodeMetaFields(f: MetaFields, willPayload: Uint8Array | undefined): SessionMeta {
  const m: { -readonly [K in keyof SessionMeta]: SessionMeta[K] } = {
    clientId: f.c,
    protocolVersion: f.v,
    expiryInterval: f.e,
  };
  if (f.u !== undefined) m.username = f.u;
  if (f.x !== undefined) m.expiresAt = f.x;
  if (f.wa !== undefined) m.willAt = f.wa;
  if (f.w !== undefined) {
    m.will = { ...decodeMessage(f.w, willPayload ?? new Uint8Array(0)), delayInterval: f.wd ?? 0 };
  }
  return m;
}
