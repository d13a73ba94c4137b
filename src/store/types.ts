/**
 * The store seam: what the broker keeps outside its own objects, as plain,
 * serializable data. Stores depend on this model and on the codec's plain
 * types only, never on broker internals; the broker translates its live
 * objects to and from it.
 *
 * Two contracts:
 * - `RetainedStore`: the retained message of each topic.
 * - `SessionStore`: persistent sessions (clean session 0 / session expiry > 0).
 *   Clean sessions never reach a store.
 *
 * Writes come in batches (`SessionBatch`): the broker collects the changes of
 * one tick and hands them over at once, so a networked store sends them in one
 * round trip. A message sent to many sessions is carried once per batch
 * (`messages`) and stored once, with a reference count that each queue or
 * in-flight entry holds; the store deletes it with its last reference.
 * The batch's promise resolves only when every change in it is as durable as
 * the store promises; only then may the broker acknowledge (PUBACK/PUBREC)
 * what the batch stored. One client's changes are applied atomically, in order.
 *
 * `src/store/contract.ts` is the one test suite every implementation passes.
 */
import type { Properties, ProtocolVersion, QoS } from "../mqtt/packet.ts";

/** An application message as stored: what a PUBLISH carried, independent of who receives it. */
export interface MessageData {
  readonly topic: string;
  readonly payload: Uint8Array;
  readonly qos: QoS;
  readonly retain: boolean;
  /** 5.0 properties forwarded to subscribers (payload format, content type, response topic, ...). */
  readonly properties?: Properties;
  /** Absolute time (ms since epoch) after which it is not delivered; 5.0 Message Expiry. */
  readonly expiresAt?: number;
  /** Client id of the publisher (No Local, the `hash` share strategy). */
  readonly from?: string;
}

/**
 * A message queued or in flight to at least one persistent session. `id` is
 * unique and sorts (as a string) in the order messages were created
 * (`MessageIds` makes such ids); queues load in that order.
 */
export interface StoredMessage extends MessageData {
  readonly id: string;
}

/** One subscription of a session, keyed by its filter (incl. a `$share/group/` prefix). */
export interface StoredSubscription {
  readonly filter: string;
  readonly qos: QoS;
  readonly noLocal?: boolean;
  readonly retainAsPublished?: boolean;
  readonly retainHandling?: 0 | 1 | 2;
  readonly subscriptionId?: number;
}

/** A QoS 1/2 delivery owed to a session, waiting for in-flight room or for the client. */
export interface StoredDelivery {
  readonly messageId: string;
  readonly qos: 1 | 2;
  /** RETAIN flag of the delivery (a retained message sent on SUBSCRIBE). */
  readonly retain: boolean;
  readonly subscriptionIds?: readonly number[];
  /** Delivered through a shared subscription: its group key. */
  readonly share?: string;
}

/** A delivery sent with a packet id and not completed yet [MQTT-4.4.0-1]. */
export interface StoredInflight extends StoredDelivery {
  readonly packetId: number;
  /** QoS 2 after PUBREC: PUBREL sent, PUBCOMP awaited [MQTT-4.3.3-3]. */
  readonly released: boolean;
}

/** A will message and when it is published. */
export interface StoredWill extends MessageData {
  /** 5.0 Will Delay Interval in seconds (0: at disconnect). */
  readonly delayInterval: number;
}

/** Everything about a session except its collections. */
export interface SessionMeta {
  readonly clientId: string;
  /** The user name it was opened with: a resumed session keeps reading with these rights. */
  readonly username?: string;
  readonly protocolVersion: ProtocolVersion;
  /** Seconds the session outlives its connection; 0xFFFFFFFF: never expires. */
  readonly expiryInterval: number;
  /** Deadline (ms since epoch) while disconnected; undefined while connected or never. */
  readonly expiresAt?: number;
  /** The will of the current connection, or one waiting for its delay after a disconnect. */
  readonly will?: StoredWill;
  /** Deadline (ms) of a will waiting for its delay; undefined while connected. */
  readonly willAt?: number;
}

/** A session as loaded at start. */
export interface StoredSession extends SessionMeta {
  readonly subscriptions: readonly StoredSubscription[];
  /** Oldest first (by message id). */
  readonly queue: readonly StoredDelivery[];
  /** In send order (by message id). */
  readonly inflight: readonly StoredInflight[];
  /** Inbound QoS 2 packet ids received (PUBREC sent) and not yet released [MQTT-4.3.3-2]. */
  readonly incomingQos2: readonly number[];
  /** The last packet id this session used (0: none yet). */
  readonly lastPacketId: number;
}

/** Everything a session store holds. */
export interface StoredState {
  readonly sessions: readonly StoredSession[];
  /** Every message a loaded queue or in-flight entry refers to, by id. */
  readonly messages: ReadonlyMap<string, StoredMessage>;
}

/** One change to one session; a batch applies a client's changes in order, atomically. */
export type SessionChange =
  /** Create the session or replace its meta (a resumed session keeps its collections). */
  | { readonly kind: "meta"; readonly meta: SessionMeta }
  /** Add or replace the subscription with this filter [MQTT-3.8.4-3]. */
  | { readonly kind: "subscribe"; readonly clientId: string; readonly sub: StoredSubscription }
  | { readonly kind: "unsubscribe"; readonly clientId: string; readonly filter: string }
  /** Append to the queue; takes a reference on the message. */
  | { readonly kind: "enqueue"; readonly clientId: string; readonly delivery: StoredDelivery }
  /** Send: a queued entry (by message id) moves to in flight, or a new one starts there (takes a reference). */
  | {
    readonly kind: "send";
    readonly clientId: string;
    readonly inflight: StoredInflight;
    /** True when the delivery was queued before (no new reference). */
    readonly fromQueue: boolean;
  }
  /** PUBREC received, PUBREL sent. */
  | { readonly kind: "release"; readonly clientId: string; readonly packetId: number }
  /** PUBACK / PUBCOMP received: the entry goes and drops its reference. */
  | {
    readonly kind: "complete";
    readonly clientId: string;
    readonly packetId: number;
    readonly messageId: string;
  }
  /** A queued delivery dropped (expired, queue full, not authorized): drops its reference. */
  | { readonly kind: "drop"; readonly clientId: string; readonly messageId: string }
  /** Inbound QoS 2: PUBLISH received (`add`) or released by PUBREL. */
  | {
    readonly kind: "incoming";
    readonly clientId: string;
    readonly packetId: number;
    readonly add: boolean;
  }
  /**
   * The session ends (expired, clean start, taken over by a clean one): every key
   * of it goes, and each queued or in-flight entry it held drops its reference.
   * The store finds those entries itself, so a session whose earlier writes
   * were lost is still deleted without leaking messages.
   */
  | { readonly kind: "delete"; readonly clientId: string };

/** The changes of one tick. Build it with `SessionBatchBuilder` (src/store/batch.ts). */
export interface SessionBatch {
  /** Messages first referenced by this batch's `enqueue`/`send` changes, each once. */
  readonly messages: readonly StoredMessage[];
  /**
   * Changes, grouped by client id, each group in order. A group may be empty (its changes
   * cancelled out): nothing to apply, but the client was acted for (the cluster's fence checks it).
   */
  readonly changes: ReadonlyMap<string, readonly SessionChange[]>;
  /** Writes to the same store that go in with these changes, atomically (`BatchRider`). */
  readonly riders?: readonly BatchRider[];
}

/**
 * A write to another part of the same store that must be applied together with a batch: a
 * crash keeps both or neither (a bridge's kept QoS 2 record deleted with the deliveries its
 * local publish became, so a restart neither loses nor repeats them). A store applies the
 * form it has and sets `applied` once the batch is durable; one that has none (memory, a
 * fenced cluster node) leaves it unset, and the writer then applies the write on its own.
 */
export interface BatchRider {
  /** Run inside the batch's SQLite transaction. */
  readonly sqlite?: () => void;
  /** Redis commands run in the batch's script. */
  readonly redis?: readonly (readonly string[])[];
  applied?: boolean;
}

/** Where persistent sessions live. */
export interface SessionStore {
  /** Every stored session and the messages they hold. Called once, at start. */
  load(): Promise<StoredState>;
  /**
   * Only these sessions (absent ones are left out) and the messages they hold:
   * a cluster node taking over a client whose session another node held.
   */
  loadSessions?(clientIds: readonly string[]): Promise<StoredState>;
  /**
   * Apply a batch. Resolves when it is durable; rejects when it is not stored
   * (the broker must then not acknowledge what it carried). Batches apply in
   * the order they were written. FencedWriteError: all of it was stored but
   * some clients' changes, refused because another cluster node writes them.
   */
  write(batch: SessionBatch): Promise<void>;
  close(): Promise<void>;
}

/**
 * Where retained messages live. Lookups answer from memory (a networked store
 * loads its index at start); writes may be asynchronous.
 */
export interface RetainedStore {
  /**
   * Store `message` as the retained message of `topic`, or clear it with undefined
   * [MQTT-3.3.1-10]. A store that orders the changes of a cluster (Redis) resolves to the
   * version it gave this one. `rider`: a write applied together with this one, as with a
   * session batch (`BatchRider`), by a store that can.
   */
  setRetained(
    topic: string,
    message: MessageData | undefined,
    rider?: BatchRider,
  ): void | Promise<RetainedWrite>;
  /** Retained messages whose topic matches `filter` (wildcards allowed); expired ones are gone. */
  matchRetained(filter: string): MessageData[];
  /**
   * The same, one at a time, without building the list (SUBSCRIBE streams from it); expired
   * messages may be left for the caller to skip.
   */
  retainedCursor(filter: string): Iterator<MessageData>;
  /** Number of retained messages (for $SYS). */
  retainedCount(): number;
  close(): Promise<void>;
}

/** What an asynchronous retained write resolves to: its version, where the store gives one. */
export type RetainedWrite = number | undefined | void;

/** A store with both halves, as the broker takes it. */
export interface Store extends RetainedStore {
  /** Absent: sessions are not persisted (the in-memory mode keeps them in the broker's objects). */
  readonly sessions?: SessionStore;
  /** Resolves once stored state is loaded (retained index filled). */
  open?(): Promise<void>;
}

/**
 * A batch stored whole except the changes of `clientIds`, which another cluster node writes
 * now (the fence): what was delivered to them is not kept, the rest is.
 */
export class FencedWriteError extends Error {
  constructor(readonly clientIds: readonly string[]) {
    super(`not stored for ${clientIds.length} client(s) written by another node now`);
  }
}
