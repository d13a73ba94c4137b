/**
 * Share groups across nodes: each message of a group goes to one node, whose members take it
 * (round, random or hash over the nodes with members, as over the members on one node).
 *
 * Nodes with a member online come first: a node whose members are all offline (persistent
 * sessions, disconnected) gets a turn only while no member is online anywhere, so an online
 * member never idles while messages queue for one that may be away for hours. A member that goes
 * offline between another node's pick and the message's arrival still gets it queued (or handed
 * to another member there), as on one node.
 */
import type { Broker } from "../broker/broker.ts";
import type { Message } from "../broker/message.ts";
import type { MessageData } from "../store/types.ts";
import type { RouteTable } from "./route_table.ts";
import type { ClusterBus, NodeId } from "./types.ts";

export class ShareTurns {
  private readonly turns = new Map<string, number>();

  constructor(
    private readonly broker: Broker,
    private readonly bus: ClusterBus,
    private readonly routes: RouteTable,
    private readonly strategy: "round" | "random" | "hash",
  ) {}

  /**
   * Assign each share group matching `message` to one node, adding the others' to `targets`;
   * returns the groups served elsewhere (undefined: none).
   */
  pick(message: Message, targets: Map<NodeId, string[] | undefined>): Set<string> | undefined {
    const found = this.routes.shares(message.topic);
    if (found.length === 0) return undefined;
    const candidates = new Map<string, { online: NodeId[]; any: NodeId[] }>();
    for (const r of found) {
      let c = candidates.get(r.key);
      if (!c) candidates.set(r.key, c = { online: [], any: [] });
      c.any.push(r.node);
      if (this.routes.online(r)) c.online.push(r.node);
    }
    const router = this.broker.router;
    const here = this.bus.nodeId;
    let skip: Set<string> | undefined;
    for (const [key, c] of candidates) {
      // Here if a member here may take it now: online, not its publisher (self-pub ignored);
      // with nobody online anywhere, if one here may take it at all.
      let nodes = c.online;
      if (router.hasOnlineMember(key, message)) nodes.push(here);
      else if (nodes.length === 0) {
        nodes = c.any;
        if (router.anyMember(key, message)) nodes.push(here);
      }
      nodes.sort();
      const node = this.turn(key, nodes, message.from);
      if (node === here) continue;
      (skip ??= new Set()).add(key);
      const shares = targets.get(node);
      if (shares) shares.push(key);
      else targets.set(node, [key]);
    }
    return skip;
  }

  /**
   * A member here went offline leaving `message` of group `share` unacknowledged, and no other
   * member here is online: to a node with an online member (false: none, it waits here); with
   * `offline` (its session ends and no member here is left), to one with any member.
   */
  handOn(share: string, message: Message, offline: boolean): boolean {
    return this.sendOn(share, message, offline, undefined);
  }

  /**
   * A shared message another node's member left: to a member here (one offline: queued). A node
   * may find none that may take it (its online member is the message's publisher, under
   * ignore-client-self-pub, or its members just went): it passes the message on once, to another
   * node with a member, rather than drop it.
   */
  take(from: NodeId, share: string, data: MessageData, passedOn: boolean): void {
    const router = this.broker.router;
    const message: Message = data; // decoded for this node alone (codec.ts): owned
    message.owned = true;
    const sub = router.anyMember(share, message);
    if (sub) {
      router.deliverTo(sub, message, sub.retainAsPublished && message.retain, undefined, share);
      this.broker.stats.sent++;
      return;
    }
    if (!passedOn && this.sendOn(share, message, true, from)) return;
    this.broker.log(`cluster: a shared message came for a group with no member here to take it`);
  }

  /** To a node with a member of `share` (online first; `offline`: any), not `except`. */
  private sendOn(
    share: string,
    message: Message,
    offline: boolean,
    except: NodeId | undefined,
  ): boolean {
    const routes = this.routes.shares(message.topic).filter((r) =>
      r.key === share && r.node !== except
    );
    const online = routes.filter((r) => this.routes.online(r));
    const nodes = (online.length > 0 || !offline ? online : routes).map((r) => r.node);
    if (nodes.length === 0) return false;
    const to = this.turn(share, nodes.sort(), message.from);
    const passedOn = except !== undefined || undefined;
    this.bus.send(to, { kind: "share", message, share, passedOn });
    return true;
  }

  private turn(key: string, nodes: NodeId[], from: string | undefined): NodeId {
    if (this.strategy === "random") return nodes[Math.floor(Math.random() * nodes.length)];
    if (this.strategy === "hash" && from !== undefined) {
      let h = 0;
      for (let i = 0; i < from.length; i++) h = (h * 31 + from.charCodeAt(i)) | 0;
      return nodes[Math.abs(h) % nodes.length];
    }
    const turn = this.turns.get(key) ?? 0;
    this.turns.set(key, turn + 1);
    return nodes[turn % nodes.length];
  }
}
