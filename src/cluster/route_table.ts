/**
 * The other nodes' routes, as this node caches them from the bus: which nodes have a
 * subscription matching a topic, which share groups have members where, and which nodes hold a
 * persistent session for it (durable_routes.ts). Kept whole per node, so a node that goes takes
 * all its routes with it.
 *
 * A share group's filter has a second key, `ONLINE_PREFIX + $share/...`, while a member
 * connected to that node holds it (local_routes.ts): a group's turns go to the nodes where a
 * member is online, and round the others only while none is. Like the durable keys it starts
 * with NUL, which no topic filter can contain [MQTT-1.5.4-2]; a node of an older build files it
 * as nothing (durable_routes.ts) and keeps giving turns to every node with a member.
 */
import { TopicIndex } from "../broker/topic_index.ts";
import { parseShared } from "../mqtt/topic.ts";
import { DurableRoutes } from "./durable_routes.ts";
import type { NodeId } from "./types.ts";

/** Route key prefix of a share filter that an online member holds. */
export const ONLINE_PREFIX = "\0online\0";

export interface ShareRoute {
  /** `group\0filter`. */
  readonly key: string;
  readonly node: NodeId;
}

export class RouteTable {
  /** Other nodes' plain filters: the value is the node id. */
  private readonly plain = new TopicIndex<NodeId>();
  /** Other nodes' share groups: one entry per (group, filter, node). */
  private readonly shared = new TopicIndex<ShareRoute>();
  /** Every route of each other node, to drop them when it goes. */
  private readonly byNode = new Map<NodeId, Set<string>>();
  /** `group\0filter\0node` of each share route with an online member there. */
  private readonly onlineShares = new Set<string>();
  readonly durable = new DurableRoutes();

  /** Whether any other node has a route (a filter or a share group). */
  get any(): boolean {
    return this.byNode.size > 0;
  }

  /** The nodes with a plain subscription matching `topic`. */
  nodes(topic: string): readonly NodeId[] {
    return this.plain.matchAll(topic);
  }

  /** The share groups' members on other nodes matching `topic`. */
  shares(topic: string): readonly ShareRoute[] {
    return this.shared.matchAll(topic);
  }

  /** Whether a member of `route`'s group is online on its node. */
  online(route: ShareRoute): boolean {
    return this.onlineShares.has(route.key + "\0" + route.node);
  }

  /**
   * `node` now has (or no longer has) a route `key`: a filter, a `$share/...`, its online key or
   * a durable key.
   */
  set(node: NodeId, key: string, present: boolean): void {
    const online = key.startsWith(ONLINE_PREFIX);
    if (!online && DurableRoutes.owns(key)) return this.durable.remoteRoute(node, key, present);
    let set = this.byNode.get(node);
    if (present) {
      if (!set) this.byNode.set(node, set = new Set());
      set.add(key);
    } else {
      if (!set?.delete(key)) return;
      if (set.size === 0) this.byNode.delete(node);
    }
    if (online) return this.setOnline(node, key.slice(ONLINE_PREFIX.length), present);
    const share = parseShared(key);
    if (share) {
      const group = share.group + "\0" + share.filter;
      if (present) this.shared.add(share.filter, group + "\0" + node, { key: group, node });
      else this.shared.remove(share.filter, group + "\0" + node);
    } else if (present) this.plain.add(key, node, node);
    else this.plain.remove(key, node);
  }

  private setOnline(node: NodeId, filter: string, present: boolean): void {
    const share = parseShared(filter);
    if (!share) return;
    const id = share.group + "\0" + share.filter + "\0" + node;
    if (present) this.onlineShares.add(id);
    else this.onlineShares.delete(id);
  }

  /** `node` left or died: none of its routes hold any more. */
  drop(node: NodeId): void {
    this.durable.dropNode(node);
    for (const key of [...(this.byNode.get(node) ?? [])]) this.set(node, key, false);
  }

  /** The whole table read again (after joining or reconnecting): replaces what was cached. */
  replace(table: ReadonlyMap<NodeId, readonly string[]>): void {
    for (const node of [...this.byNode.keys()]) this.drop(node);
    this.durable.dropAll();
    for (const [node, keys] of table) {
      for (const key of keys) this.set(node, key, true);
    }
  }
}
