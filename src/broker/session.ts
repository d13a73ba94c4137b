import type { QoS, Will } from "../mqtt/packet.ts";
import type { Message } from "./message.ts";
import type { Connection } from "./connection.ts";
import { DeliveryQueue, type ReadonlyDeliveryQueue } from "./delivery_queue.ts";
import { InflightWindow } from "./inflight.ts";
import type { SessionJournal } from "./journal.ts";

/** Connected, and not on its way out (taken over, shutting down). */
export function isOnline(session: Session): boolean {
  const c = session.connection;
  return c !== undefined && c.connected && !c.closing;
}

/** One subscription of one session, as stored in the topic index. */
export interface Subscription {
  readonly session: Session;
  /** The filter as the client sent it, incl. a `$share/group/` prefix. */
  readonly filter: string;
  /** The filter used for matching (without the share prefix). */
  readonly matchFilter: string;
  readonly group?: string;
  readonly qos: QoS;
  readonly noLocal: boolean;
  readonly retainAsPublished: boolean;
  readonly retainHandling: 0 | 1 | 2;
  readonly subscriptionId?: number;
}

/** A QoS 1/2 delivery the client has not completed yet. */
export interface Outgoing {
  readonly message: Message;
  readonly qos: 1 | 2;
  readonly retain: boolean;
  readonly subscriptionIds?: number[];
  /** Set when delivered through a shared subscription: its group key ("group\0filter"). */
  readonly share?: string;
  /** qos 2 after PUBREC: we sent PUBREL and wait for PUBCOMP (set by session_state.ts). */
  readonly released: boolean;
}

/** A delivery waiting for inflight room or for the client to come back. */
export interface Queued {
  readonly message: Message;
  readonly qos: 1 | 2;
  readonly retain: boolean;
  readonly subscriptionIds?: number[];
  readonly share?: string;
}

/** Retained messages being streamed after a SUBSCRIBE (retained_replay.ts). */
export interface ReplayPump {
  pump(): void;
  cancel(filter: string): void;
}

/** The in-flight window as everyone but the owner modules sees it. */
export interface ReadonlyInflight<T> extends Iterable<[number, T]> {
  readonly size: number;
  has(id: number): boolean;
  get(id: number): T | undefined;
  values(): IterableIterator<T>;
}

/** Session expiry meaning "never" (3.1.1 clean session 0, 5.0 0xFFFFFFFF). */
export const NEVER_EXPIRES = 0xffffffff;

/**
 * A session's state [MQTT-3.1.2-4]: what outlives connections and what the
 * session store keeps (`StoredSession` in src/store/types.ts; the journal and
 * restore.ts translate, because here messages are live objects, a payload
 * possibly still a range of its socket chunk, not ids). Read-only here: every
 * change goes through session_lifecycle.ts (open, resume, take over,
 * disconnect, expire), session_subscriptions.ts (subscribe, unsubscribe) or
 * session_state.ts (queue, in flight, inbound QoS 2, packet ids), which write
 * the journal too.
 */
export interface SessionState {
  readonly clientId: string;
  /** The user name that owns it: another user may not resume or take it over. */
  readonly username: string | undefined;
  /** Seconds; 0 ends the session with the connection. */
  readonly expiryInterval: number;
  /** By filter as sent (incl. a `$share/group/` prefix). */
  readonly subscriptions: ReadonlyMap<string, Subscription>;
  /** Deliveries waiting for in-flight room or for the client, oldest first. */
  readonly queue: ReadonlyDeliveryQueue<Queued>;
  /** Outgoing QoS 1/2 by packet id, in send order. */
  readonly inflight: ReadonlyInflight<Outgoing>;
  /** Incoming QoS 2 packet ids received but not yet released [MQTT-4.3.3-2]. */
  readonly incomingQos2: ReadonlySet<number>;
  /** The will of the current connection. */
  readonly will: Will | undefined;
  /** 5.0 will waiting for its Will Delay Interval (its deadline: SessionLifecycle.deadlines). */
  readonly pendingWill: Will | undefined;
  /** The last packet id used (kept across restarts by the session store). */
  readonly lastPacketId: number;
}

/**
 * A session's live link: nothing here is stored. The connection is set by
 * session_lifecycle.ts only; the rest belongs to the module named on it.
 */
export interface SessionLink {
  readonly connection: Connection | undefined;
  /** Retained messages still to be sent for this connection's subscribes (retained_replay.ts). */
  replay: ReplayPump | undefined;
  /** Scratch for Router.route: the last message that matched this session. */
  routeMark: number;
  /** Messages this session lost because it could not keep up (delivery.ts). */
  dropped: number;
  /** When its drops were last logged (ms; 0 = never; drops.ts). */
  lastDropLog: number;
  /** Set while the session is persistent and a session store keeps it (journal.ts). */
  journal: SessionJournal | undefined;
  /**
   * Set while a cluster hands the session between nodes (src/cluster/handover.ts): sees each
   * delivery first, and true takes it (sent on to the node that holds the session now, or a
   * second copy of a message delivered already).
   */
  intercept: DeliveryIntercept | undefined;
}

/** See SessionLink.intercept. */
export type DeliveryIntercept = (
  message: Message,
  qos: QoS,
  retain: boolean,
  subscriptionIds: number[] | undefined,
  share: string | undefined,
) => boolean;

/** A session as the broker passes it around: its state (read-only) and its live link. */
export interface Session extends SessionState, SessionLink {}

/**
 * The same object with its state writable. Only the owner modules take this
 * view (`make check` fails if another file names `writableState`, `createSession` or `WritableSession`).
 */
export interface WritableSession extends Session {
  username: string | undefined;
  expiryInterval: number;
  readonly subscriptions: Map<string, Subscription>;
  readonly queue: DeliveryQueue<Queued>;
  readonly inflight: InflightWindow<Outgoing>;
  readonly incomingQos2: Set<number>;
  will: Will | undefined;
  pendingWill: Will | undefined;
  lastPacketId: number;
  connection: Connection | undefined;
}

/** For the owner modules: the writable view of `session` (the same object). */
export function writableState(session: Session): WritableSession {
  return session as WritableSession;
}

/** For the owner modules: a new session, not yet registered anywhere. */
export function createSession(
  clientId: string,
  expiryInterval: number,
  username?: string,
): WritableSession {
  return new SessionObject(clientId, expiryInterval, username);
}

interface SessionExtras {
  replay?: ReplayPump;
  pendingWill?: Will;
  dropped?: number;
  lastDropLog?: number;
  journal?: SessionJournal;
}

/**
 * State and link in one object: a delivery reads both (queue and connection),
 * and a second object per session would cost memory per connection and a load
 * per delivery. The types above keep them apart.
 */
class SessionObject implements WritableSession {
  readonly clientId: string;
  username: string | undefined;
  expiryInterval: number;
  // The collections are made on first use: most idle sessions never need them,
  // and empty ones cost a few hundred bytes each per connection.
  private _subscriptions: Map<string, Subscription> | undefined;
  private _inflight: InflightWindow<Outgoing> | undefined;
  private _queue: DeliveryQueue<Queued> | undefined;
  private _incomingQos2: Set<number> | undefined;

  get subscriptions(): Map<string, Subscription> {
    return this._subscriptions ??= new Map();
  }
  get inflight(): InflightWindow<Outgoing> {
    return this._inflight ??= new InflightWindow();
  }
  get queue(): DeliveryQueue<Queued> {
    return this._queue ??= new DeliveryQueue();
  }
  get incomingQos2(): Set<number> {
    return this._incomingQos2 ??= new Set();
  }
  connection: Connection | undefined;
  will: Will | undefined;
  lastPacketId = 0;
  routeMark = 0;
  /**
   * A field, not in the extras: deliver() reads it for every message, and the extras' shapes
   * vary (a megamorphic load cost Deno ~5% of S1 QoS 0's throughput).
   */
  intercept: DeliveryIntercept | undefined = undefined;
  /** Rarely used state, made on first use: an idle session stays small. */
  private x: SessionExtras | undefined;

  get pendingWill(): Will | undefined {
    return this.x?.pendingWill;
  }
  set pendingWill(v: Will | undefined) {
    (this.x ??= {}).pendingWill = v;
  }
  get journal(): SessionJournal | undefined {
    return this.x?.journal;
  }
  set journal(v: SessionJournal | undefined) {
    if (v || this.x) (this.x ??= {}).journal = v;
  }
  get dropped(): number {
    return this.x?.dropped ?? 0;
  }
  set dropped(n: number) {
    (this.x ??= {}).dropped = n;
  }
  get replay(): ReplayPump | undefined {
    return this.x?.replay;
  }
  set replay(v: ReplayPump | undefined) {
    if (v || this.x) (this.x ??= {}).replay = v;
  }
  get lastDropLog(): number {
    return this.x?.lastDropLog ?? 0;
  }
  set lastDropLog(t: number) {
    (this.x ??= {}).lastDropLog = t;
  }

  constructor(clientId: string, expiryInterval: number, username?: string) {
    this.clientId = clientId;
    this.username = username;
    this.expiryInterval = expiryInterval;
  }
}
