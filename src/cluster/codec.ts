/**
 * Bus messages as bytes: a 4-byte big-endian length, a JSON header (the kind,
 * the sender, the message's fields as the Redis store encodes them) and the
 * payload as raw bytes (no base64 on the hot path).
 */
import { decodeMessage, encodeMessageFields } from "../store/redis_codec.ts";
import type { BusMessage, NodeId } from "./types.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

interface Header {
  /** sender */
  f: NodeId;
  k: BusMessage["kind"];
  /** publish: the message fields; kick: client id; retained: topic */
  m?: string;
  c?: string;
  e?: number;
  t?: string;
  s?: readonly string[];
  a?: number;
  u?: string;
  i?: readonly number[];
  o?: boolean;
}

export function encodeBusMessage(from: NodeId, msg: BusMessage): Uint8Array {
  const h: Header = { f: from, k: msg.kind };
  let payload: Uint8Array | undefined;
  if (msg.kind === "publish") {
    h.m = encodeMessageFields(msg.message);
    payload = msg.message.payload;
    if (msg.shares) h.s = msg.shares;
    if (msg.ack !== undefined) h.a = msg.ack;
  } else if (msg.kind === "ack") {
    h.i = msg.ids;
    h.o = msg.ok;
  } else if (msg.kind === "released") {
    h.c = msg.clientId;
    h.e = msg.epoch;
    h.o = msg.ok;
  } else if (msg.kind === "kick") {
    h.c = msg.clientId;
    h.e = msg.epoch;
    if (msg.username !== undefined) h.u = msg.username;
  } else {
    h.t = msg.topic;
    if (msg.message) {
      h.m = encodeMessageFields(msg.message);
      payload = msg.message.payload;
    }
  }
  const head = enc.encode(JSON.stringify(h));
  const out = new Uint8Array(4 + head.length + (payload?.length ?? 0));
  new DataView(out.buffer).setUint32(0, head.length);
  out.set(head, 4);
  if (payload) out.set(payload, 4 + head.length);
  return out;
}

/** The sender and the message; undefined for bytes that are not a bus message. */
export function decodeBusMessage(b: Uint8Array): { from: NodeId; msg: BusMessage } | undefined {
  try {
    const n = new DataView(b.buffer, b.byteOffset, b.byteLength).getUint32(0);
    const h = JSON.parse(dec.decode(b.subarray(4, 4 + n))) as Header;
    const rest = b.slice(4 + n);
    switch (h.k) {
      case "publish":
        return {
          from: h.f,
          msg: { kind: "publish", message: decodeMessage(h.m!, rest), shares: h.s, ack: h.a },
        };
      case "ack":
        return { from: h.f, msg: { kind: "ack", ids: h.i!, ok: h.o === true } };
      case "released":
        return {
          from: h.f,
          msg: { kind: "released", clientId: h.c!, epoch: h.e!, ok: h.o === true },
        };
      case "kick":
        return { from: h.f, msg: { kind: "kick", clientId: h.c!, epoch: h.e!, username: h.u } };
      case "retained":
        return {
          from: h.f,
          msg: {
            kind: "retained",
            topic: h.t!,
            message: h.m === undefined ? undefined : decodeMessage(h.m, rest),
          },
        };
    }
  } catch {
    // fall through: not ours
  }
  return undefined;
}
