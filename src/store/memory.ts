import { byMessageId } from "./ids.ts";
import { RetainedMemory } from "./retained.ts";
import type {
  MessageData,
  SessionBatch,
  SessionChange,
  SessionMeta,
  SessionStore,
  Store,
  StoredDelivery,
  StoredInflight,
  StoredMessage,
  StoredSession,
  StoredState,
  StoredSubscription,
} from "./types.ts";

/**
 * The in-memory store (enable-test-mode): nothing survives a restart, nothing
 * else is needed. The broker keeps sessions in its own objects in this mode,
 * so `sessions` is absent; `MemorySessionStore` is the reference
 * implementation of the session contract (and what tests reopen).
 */
export class MemoryStore implements Store {
  private readonly retained = new RetainedMemory();

  /** `sessions`: a session store to use with it (tests: a restart within one process). */
  constructor(readonly sessions?: SessionStore) {}

  setRetained(topic: string, message: MessageData | undefined): void {
    this.retained.set(topic, message);
  }

  matchRetained(filter: string): MessageData[] {
    return this.retained.match(filter);
  }

  retainedCursor(filter: string): Iterator<MessageData> {
    return this.retained.cursor(filter);
  }

  retainedCount(): number {
    return this.retained.index.size;
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}

interface MemorySession {
  meta: SessionMeta;
  subscriptions: Map<string, StoredSubscription>;
  queue: Map<string, StoredDelivery>;
  inflight: Map<number, StoredInflight>;
  incomingQos2: Set<number>;
  lastPacketId: number;
}

/** What a `MemorySessionStore` writes to; several stores opened on one backing see the same data. */
export class MemorySessionData {
  readonly sessions = new Map<string, MemorySession>();
  readonly messages = new Map<string, { message: StoredMessage; refs: number }>();
}

/** Sessions kept in plain maps, applied exactly as a networked store would. */
export class MemorySessionStore implements SessionStore {
  constructor(readonly data: MemorySessionData = new MemorySessionData()) {}

  load(): Promise<StoredState> {
    const sessions: StoredSession[] = [];
    const messages = new Map<string, StoredMessage>();
    for (const s of this.data.sessions.values()) {
      const queue = [...s.queue.values()].sort(byMessageId);
      const inflight = [...s.inflight.values()].sort(byMessageId);
      for (const d of [...queue, ...inflight]) {
        const held = this.data.messages.get(d.messageId);
        if (held) messages.set(d.messageId, held.message);
      }
      sessions.push({
        ...s.meta,
        subscriptions: [...s.subscriptions.values()],
        queue,
        inflight,
        incomingQos2: [...s.incomingQos2],
        lastPacketId: s.lastPacketId,
      });
    }
    return Promise.resolve({ sessions, messages });
  }

  write(batch: SessionBatch): Promise<void> {
    const refs = new Map<string, number>();
    const ref = (id: string, n: number) => refs.set(id, (refs.get(id) ?? 0) + n);
    for (const m of batch.messages) {
      if (!this.data.messages.has(m.id)) this.data.messages.set(m.id, { message: m, refs: 0 });
    }
    for (const [clientId, changes] of batch.changes) {
      for (const c of changes) this.apply(clientId, c, ref);
    }
    for (const [id, n] of refs) this.adjust(id, n);
    // A carried message nobody referenced is not kept.
    for (const m of batch.messages) this.adjust(m.id, 0);
    return Promise.resolve();
  }

  close(): Promise<void> {
    return Promise.resolve();
  }

  private adjust(id: string, n: number): void {
    const held = this.data.messages.get(id);
    if (!held) return;
    held.refs += n;
    if (held.refs <= 0) this.data.messages.delete(id);
  }

  private apply(clientId: string, c: SessionChange, ref: (id: string, n: number) => void): void {
    const sessions = this.data.sessions;
    if (c.kind === "meta") {
      const s = sessions.get(clientId);
      if (s) s.meta = c.meta;
      else {
        sessions.set(clientId, {
          meta: c.meta,
          subscriptions: new Map(),
          queue: new Map(),
          inflight: new Map(),
          incomingQos2: new Set(),
          lastPacketId: 0,
        });
      }
      return;
    }
    if (c.kind === "delete") {
      const s = sessions.get(clientId);
      if (!s) return;
      sessions.delete(clientId);
      for (const id of s.queue.keys()) ref(id, -1);
      for (const f of s.inflight.values()) ref(f.messageId, -1);
      return;
    }
    const s = sessions.get(clientId);
    if (!s) return; // the contract: meta is written first; a change to no session is lost
    switch (c.kind) {
      case "subscribe":
        s.subscriptions.set(c.sub.filter, c.sub);
        break;
      case "unsubscribe":
        s.subscriptions.delete(c.filter);
        break;
      case "enqueue":
        s.queue.set(c.delivery.messageId, c.delivery);
        ref(c.delivery.messageId, 1);
        break;
      case "send":
        if (c.fromQueue) s.queue.delete(c.inflight.messageId);
        else ref(c.inflight.messageId, 1);
        s.inflight.set(c.inflight.packetId, c.inflight);
        s.lastPacketId = c.inflight.packetId;
        break;
      case "release": {
        const f = s.inflight.get(c.packetId);
        if (f) s.inflight.set(c.packetId, { ...f, released: true });
        break;
      }
      case "complete":
        if (s.inflight.delete(c.packetId)) ref(c.messageId, -1);
        break;
      case "drop":
        if (s.queue.delete(c.messageId)) ref(c.messageId, -1);
        break;
      case "incoming":
        if (c.add) s.incomingQos2.add(c.packetId);
        else s.incomingQos2.delete(c.packetId);
        break;
    }
  }
}
