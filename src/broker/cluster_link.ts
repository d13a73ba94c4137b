/**
 * What the broker core asks of a cluster (src/cluster/node.ts implements it):
 * forward a message to the other nodes that have a matching subscription, and
 * hear when this node starts or stops having a subscription with a filter.
 */
import type { Message } from "./message.ts";
import type { Session } from "./session.ts";
import type { MessageData, RetainedWrite } from "../store/types.ts";

export interface ClusterLink {
  /**
   * Whether any other node has a route now. While none has, the broker routes here only: no
   * forward() or confirmation() per message (a node with cluster.enable and no peers).
   */
  readonly forwarding: boolean;
  /** Send `message` to every other node with a matching route; returns how many. */
  forward(message: Message): number;
  /**
   * After forward(): the promise that every node it sent a client's QoS 1/2
   * message to has stored it (the publisher is acknowledged then); undefined
   * when there is nothing to wait for. Taken once.
   */
  confirmation(): Promise<void> | undefined;
  /** `session` here subscribed with `filter` (a share group: `$share/g/filter`). */
  subscribed(filter: string, session: Session): void;
  /** That subscription of `session` is gone. */
  unsubscribed(filter: string, session: Session): void;
  /**
   * `session`'s expiry was set (resumed, or a 5.0 DISCONNECT): it may have become persistent or
   * stopped being so, which the other nodes must know of its filters.
   */
  expiryChanged(session: Session): void;
  /**
   * The retained message of `topic` changed here (undefined: cleared): tell the
   * other nodes, with every field. `stored`: this node's store write, if async
   * (resolving to the version Redis gave the change).
   */
  retained(
    topic: string,
    message: MessageData | undefined,
    stored: void | Promise<RetainedWrite>,
  ): void;
  /**
   * Before a CONNECT is accepted: make this node the owner of `clientId`; the
   * node that held it closes its connection and hands over the session, which
   * is then loaded here. Undefined when already done for `conn`; rejects
   * (with a `reasonCode`) when the client may not have it.
   */
  takeOver(conn: object, clientId: string, username: string | undefined): Promise<void> | undefined;
  /**
   * A QoS 2 resend of `publisher` taken as a duplicate: what its PUBREC waits for first (a
   * fenced session's copy of one of its messages on its way to the session's holder,
   * cluster/fenced_rescue.ts); never rejects. Undefined: nothing.
   */
  resendWaits?(publisher: string): Promise<void> | undefined;
  /**
   * A shared message a member here leaves unacknowledged, with no other member online here:
   * sent to a node with an online member of group `share` (true), if any; with `offline` (its
   * session ends, none here), to a node with any member.
   */
  handShare?(share: string, message: Message, offline: boolean): boolean;
  /** The live nodes, this one included ($SYS). */
  nodes(): readonly { id: string; since: number }[];
}
