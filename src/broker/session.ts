import type { QoS, Will } from "../mqtt/packet.ts";
import type { Message } from "./message.ts";
import type { Connection } from "./connection.ts";
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
  /** qos 2 after PUBREC: we sent PUBREL and wait for PUBCOMP. */
  released: boolean;
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

interface SessionExtras {
  replay?: ReplayPump;
  pendingWill?: Will;
  dropped?: number;
  lastDropLog?: number;
  journal?: SessionJournal;
}

/** Session expiry meaning "never" (3.1.1 clean session 0, 5.0 0xFFFFFFFF). */
export const NEVER_EXPIRES = 0xffffffff;

/**
 * The server side of an MQTT session [MQTT-3.1.2-4]: it outlives connections
 * when the client asked for a persistent session.
 */
export class Session {
  readonly clientId: string;
  /** The user name that owns it: another user may not resume or take it over. */
  username: string | undefined;
  /** Seconds; 0 ends the session with the connection. */
  expiryInterval: number;
  // The collections are made on first use: most idle sessions never need them,
  // and empty ones cost a few hundred bytes each per connection.
  private _subscriptions: Map<string, Subscription> | undefined;
  private _inflight: InflightWindow<Outgoing> | undefined;
  private _queue: Queued[] | undefined;
  private _incomingQos2: Set<number> | undefined;

  get subscriptions(): Map<string, Subscription> {
    return this._subscriptions ??= new Map();
  }
  /** Outgoing QoS 1/2 by packet id, in send order. */
  get inflight(): InflightWindow<Outgoing> {
    return this._inflight ??= new InflightWindow();
  }
  get queue(): Queued[] {
    return this._queue ??= [];
  }
  /** Incoming QoS 2 packet ids received but not yet released [MQTT-4.3.3-2]. */
  get incomingQos2(): Set<number> {
    return this._incomingQos2 ??= new Set();
  }
  connection: Connection | undefined;
  will: Will | undefined;
  /** The last packet id used (kept across restarts by the session store). */
  lastPacketId = 0;
  /** Scratch for Broker.route: the last message that matched this session. */
  routeMark = 0;
  /** Rarely used state, made on first use: an idle session stays small. */
  private x: SessionExtras | undefined;

  /** 5.0 will waiting for its Will Delay Interval (its deadline: Broker.deadlines). */
  get pendingWill(): Will | undefined {
    return this.x?.pendingWill;
  }
  set pendingWill(v: Will | undefined) {
    (this.x ??= {}).pendingWill = v;
  }
  /** Set while the session is persistent and a session store keeps it: its changes go there. */
  get journal(): SessionJournal | undefined {
    return this.x?.journal;
  }
  set journal(v: SessionJournal | undefined) {
    if (v || this.x) (this.x ??= {}).journal = v;
  }
  /** Messages this session lost because it could not keep up (its queue or output was full). */
  get dropped(): number {
    return this.x?.dropped ?? 0;
  }
  set dropped(n: number) {
    (this.x ??= {}).dropped = n;
  }
  /** Retained messages still to be sent for this connection's subscribes. */
  get replay(): ReplayPump | undefined {
    return this.x?.replay;
  }
  set replay(v: ReplayPump | undefined) {
    if (v || this.x) (this.x ??= {}).replay = v;
  }
  /** When its drops were last logged (ms; 0 = never). */
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

  /** Next free packet id (1..65535), skipping ids still in flight [MQTT-2.3.1-4]. */
  nextPacketId(): number {
    for (let i = 0; i < 65535; i++) {
      this.lastPacketId = this.lastPacketId === 65535 ? 1 : this.lastPacketId + 1;
      if (!this.inflight.has(this.lastPacketId)) return this.lastPacketId;
    }
    throw new Error("no free packet identifier"); // unreachable while inflight <= 65535
  }
}
