import { RetainedIndex } from "./retained_index.ts";
import type { MessageData } from "./types.ts";

/**
 * The in-memory index of retained messages every store answers SUBSCRIBE from
 * (no backend scan per SUBSCRIBE). It keeps plain copies: the payload is copied
 * out of the socket chunk it may still be a view of.
 */
export class RetainedMemory {
  readonly index = new RetainedIndex<MessageData>();

  /** Store or clear; returns the stored record (undefined when cleared). */
  set(topic: string, message: MessageData | undefined): MessageData | undefined {
    if (!message) {
      this.index.delete(topic);
      return undefined;
    }
    const stored = plainMessage(message);
    this.index.set(topic, stored);
    return stored;
  }

  /**
   * Matching messages one at a time (a cursor through the trie, no list); expired ones are
   * deleted on the way and reported to `onExpired`.
   */
  *cursor(filter: string, onExpired?: (topic: string) => void): Generator<MessageData> {
    for (const [topic, m] of this.index.matching(filter)) {
      if (m.expiresAt !== undefined && m.expiresAt <= Date.now()) {
        this.index.delete(topic); // 5.0 Message Expiry: gone, not just hidden
        onExpired?.(topic);
      } else yield m;
    }
  }

  /** Matching messages; expired ones are deleted and reported to `onExpired`. */
  match(filter: string, onExpired?: (topic: string) => void): MessageData[] {
    const out: MessageData[] = [];
    const now = Date.now();
    const expired: string[] = [];
    this.index.match(filter, (topic, m) => {
      // 5.0 Message Expiry: gone, not just hidden.
      if (m.expiresAt !== undefined && m.expiresAt <= now) expired.push(topic);
      else out.push(m);
    });
    for (const t of expired) {
      this.index.delete(t);
      onExpired?.(t);
    }
    return out;
  }
}

/** A plain, owned copy of a message's fields (no socket chunk kept alive, no live object). */
export function plainMessage(m: MessageData): MessageData {
  const p = m.payload;
  const owned = p.byteOffset === 0 && p.byteLength === p.buffer.byteLength ? p : p.slice();
  return messageData(m, owned);
}

/** The plain fields of `m` (absent optional ones stay absent), with `payload`. */
export function messageData(m: MessageData, payload: Uint8Array = m.payload): MessageData {
  const out: { -readonly [K in keyof MessageData]: MessageData[K] } = {
    topic: m.topic,
    payload,
    qos: m.qos,
    retain: m.retain,
  };
  if (m.properties !== undefined) out.properties = m.properties;
  if (m.expiresAt !== undefined) out.expiresAt = m.expiresAt;
  if (m.from !== undefined) out.from = m.from;
  return out;
}
