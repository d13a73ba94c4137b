/**
 * The cluster seam: what one mqttx node needs from the bus that joins it to
 * the others. `src/cluster/redis.ts` implements it over Redis (pub/sub for
 * messages, keys for membership, routes, client ownership and wills);
 * `src/cluster/kafka.ts` keeps that state in Redis and carries the messages
 * between nodes over Kafka. `src/cluster/contract.ts` is the one
 * test suite every implementation passes. The bus knows nothing of the broker:
 * `src/cluster/node.ts` glues the two.
 */
import type { MessageData } from "../store/types.ts";

export type NodeId = string;

/** Another node as this one sees it. */
export interface NodeInfo {
  readonly id: NodeId;
  /** ms since epoch: when it joined. */
  readonly since: number;
}

/** What one node sends another. */
export type BusMessage =
  /** An application message for the receiver's matching subscribers. */
  | {
    readonly kind: "publish";
    readonly message: MessageData;
    /** Share groups (`group\0filter`) whose one member for this message is on the receiver. */
    readonly shares?: readonly string[];
    /** Set for QoS 1/2: the receiver answers with an `ack` carrying it once the message is stored. */
    readonly ack?: number;
    /**
     * QoS 2 sent again by its publisher after the first forward's acknowledgement timed out:
     * that first forward's `ack` id. A receiver that has the first copy does not deliver again.
     */
    readonly resendOf?: number;
  }
  /**
   * The receiver stored (ok) or could not store the messages with these `ack` ids: `counts[i]`
   * of them with `ids[i]` (one each without `counts`; a turn's messages share an id, acks.ts).
   */
  | {
    readonly kind: "ack";
    readonly ids: readonly number[];
    readonly ok: boolean;
    readonly counts?: readonly number[];
  }
  /** Close the receiver's connection of `clientId` if it is older than `epoch` (taken over). */
  | {
    readonly kind: "kick";
    readonly clientId: string;
    readonly epoch: number;
    /** The user name of the new connection: another user's session is not taken over. */
    readonly username?: string;
  }
  /** Answer to a kick: the session was handed over (stored, forgotten), or refused (another user). */
  | {
    readonly kind: "released";
    readonly clientId: string;
    readonly epoch: number;
    readonly ok: boolean;
  }
  /**
   * A message for session `clientId`, handed on to the receiver (handover.ts): the sender held
   * the session and the message matched it there (through share group `share`, if set); the
   * receiver holds the session now. `ack`: the receiver answers once it stored it. `origin`: a
   * QoS 2 message's identity on the bus ("node:ack id" of its first forward), so that a copy
   * that reached the receiver straight is not delivered twice.
   */
  | {
    readonly kind: "handed";
    readonly clientId: string;
    readonly message: MessageData;
    readonly share?: string;
    readonly origin?: string;
    /** Its stored id, when the receiver may hold it already (fenced_rescue.ts): then skipped. */
    readonly stored?: string;
    readonly ack: number;
  }
  /** The session of `clientId` the receiver handed over is restored here, its routes announced. */
  | { readonly kind: "adopted"; readonly clientId: string; readonly epoch: number }
  /**
   * A shared message whose member on the sender left without acknowledging it (5.0 4.8.2), for
   * a member of group `share` on the receiver.
   */
  | {
    readonly kind: "share";
    readonly message: MessageData;
    readonly share: string;
    /** Passed on by a node where no member could take it (share_turns.ts): not again. */
    readonly passedOn?: boolean;
  }
  /** Answer `synced` with this id once the sender's route changes before it are applied. */
  | { readonly kind: "sync"; readonly id: number }
  | { readonly kind: "synced"; readonly id: number }
  /**
   * The retained message of `topic` changed (undefined: cleared); the sender stored it, and
   * Redis gave the change `version` (each node takes only a change newer than the one it has).
   */
  | {
    readonly kind: "retained";
    readonly topic: string;
    readonly message?: MessageData;
    readonly version?: number;
  };

/** Raised by `join` when a live node already has this id. */
export class DuplicateNodeError extends Error {}

export interface BusHandlers {
  /**
   * A message sent to this node or broadcast; per sender and destination (this node, or all),
   * in the order sent.
   */
  message(from: NodeId, msg: BusMessage): void;
  /** `node` now has (`present`) or no longer has a subscription with `filter`. */
  route(node: NodeId, filter: string, present: boolean): void;
  /** The whole route table of the other nodes (after joining or reconnecting): replaces the cache. */
  routes(table: ReadonlyMap<NodeId, readonly string[]>): void;
  nodeUp(node: NodeInfo): void;
  /**
   * A node's liveness expired (or it left). `wills`: the wills of its clients,
   * given to exactly one surviving node (to publish them); empty for the others.
   * `heir`: true on exactly one survivor of a node that died (not one that
   * left), which takes over the offline sessions the dead node held.
   */
  nodeDown(node: NodeId, wills: readonly MessageData[], heir: boolean): void;
  /** The bus was lost (false) or is back (true); logged once per change by the bus. */
  state(up: boolean): void;
}

export interface ClusterBus {
  readonly nodeId: NodeId;
  /** Register this node and start receiving. Rejects with DuplicateNodeError for a live duplicate id. */
  join(handlers: BusHandlers): Promise<void>;
  /** Leave cleanly: the others drop this node's routes at once. */
  leave(): Promise<void>;
  /** Announce that this node has (`present`) or no longer has a subscription with `filter`. */
  route(filter: string, present: boolean): void;
  /** Resolves once every route change announced so far is where the other nodes read it. */
  routesApplied?(): Promise<void>;
  /**
   * The other nodes read this node's route changes and frames in one order (route_sync.ts): a
   * frame sent after routesApplied() reaches them after those changes.
   */
  readonly routesInOrder?: boolean;
  /** Send to one node. Fire and forget: lost while the bus is down. */
  send(to: NodeId, msg: BusMessage): void;
  /** Send to every other node. */
  broadcast(msg: BusMessage): void;
  /** The live nodes, this one included. */
  nodes(): NodeInfo[];
  /**
   * Make this node the owner of `clientId`: returns a new epoch (greater than
   * every earlier claim's) and the node that owned it before, if another.
   */
  claim(clientId: string): Promise<{ epoch: number; previous?: NodeId }>;
  /**
   * The previous owner handed `clientId` over (or did not answer): from now on
   * claim `epoch` alone may write its session (a bus whose store fences writes). False: a newer
   * claim is the writer already (nothing changed).
   */
  commit?(clientId: string, epoch: number): Promise<boolean>;
  /** Claim `clientId` only if `node` owns it; epoch 0 when it does not (nothing changed). */
  claimFrom(clientId: string, node: NodeId): Promise<number>;
  /** The client ids `node` owns (claimed last). */
  ownedBy(node: NodeId): Promise<string[]>;
  /** The owner of each of `clientIds` that has one (the node that claimed it last). */
  owners(clientIds: readonly string[]): Promise<Map<string, NodeId>>;
  /** Forget the owner of `clientId` if it is still this node's claim `epoch`. */
  release(clientId: string, epoch: number): void;
  /**
   * The node has restored its stored sessions: a bus that kept messages for this node while it
   * was down may deliver them now (before this they would find no session to go to).
   */
  ready?(): void;
  /**
   * `node` died and this node is its heir: read what was sent to it that it never read (a bus
   * that keeps messages for a node: Kafka) and hand each message to `take`. Resolves once it
   * has caught up, with how many messages it read; `complete` is false if it gave up.
   */
  drain?(
    node: NodeId,
    take: (from: NodeId, msg: BusMessage) => void,
  ): Promise<{ read: number; complete: boolean }>;
  /**
   * This node, heir of dead `node` (nodeDown), has taken its sessions over and read what waited
   * for them: a new run of `node`'s broker-id, which waits for that, may join.
   */
  inherited?(node: NodeId): void;
  /** Keep (or with undefined, forget) the will of a client connected here, for survivors. */
  keepWill(clientId: string, will: MessageData | undefined): void;
}
