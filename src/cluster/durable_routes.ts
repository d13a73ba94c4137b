/**
 * Which other nodes must answer a forwarded QoS 1 message: only those with a persistent session
 * subscribed to it. "Acknowledged means kept" asks that a message for a persistent session be
 * stored before its publisher's PUBACK; a clean session keeps nothing across a disconnect, on
 * one node or across nodes, so a message for clean sessions alone is acknowledged once it left
 * the publisher's node (as on one node once it is routed). Waiting for an answer there cost a
 * round trip over the bus per publisher window (a publisher that waits for each PUBACK ran at
 * one message per ~3 ms across nodes) and ~14% of the CPU of a crossing message.
 *
 * Each node announces, beside its plain routes, a durable route per filter that a persistent
 * session holds, and once (after the routes of its restored sessions) a marker saying that it
 * does. A node without the marker (an older build, or one still restoring) answers every QoS 1
 * message, as before. Both are route-table entries starting with NUL, which no topic filter can
 * contain [MQTT-1.5.4-2]: an older node files them as filters that match no topic, and the
 * buses carry and rewrite them like any route. QoS 2 is always answered (qos2_resend.ts relies
 * on the answer to deliver it once).
 */
import { TopicIndex } from "../broker/topic_index.ts";
import type { NodeId } from "./types.ts";

/** Route key of a filter that a persistent session holds. */
export const DURABLE_PREFIX = "\0durable\0";
/** Route key that says: this node announces its durable routes. */
export const ANNOUNCES_DURABLE = "\0announces-durable";

/** The other nodes' durable routes (this node's own: local_routes.ts). */
export class DurableRoutes {
  /** Other nodes' durable filters: the value is the node id. */
  private readonly remote = new TopicIndex<NodeId>();
  private readonly byNode = new Map<NodeId, Set<string>>();
  private readonly announcing = new Set<NodeId>();

  /** Whether a route key is this module's (starts with NUL) rather than a topic filter. */
  static owns(key: string): boolean {
    return key.charCodeAt(0) === 0;
  }

  /** Another node's change of one of this module's keys. */
  remoteRoute(node: NodeId, key: string, present: boolean): void {
    if (key === ANNOUNCES_DURABLE) {
      if (present) this.announcing.add(node);
      else this.announcing.delete(node);
      return;
    }
    if (!key.startsWith(DURABLE_PREFIX)) return; // a newer node's key: not ours to read
    const filter = key.slice(DURABLE_PREFIX.length);
    let set = this.byNode.get(node);
    if (present) {
      if (!set) this.byNode.set(node, set = new Set());
      set.add(filter);
      this.remote.add(filter, node, node);
    } else if (set?.delete(filter)) {
      if (set.size === 0) this.byNode.delete(node);
      this.remote.remove(filter, node);
    }
  }

  /** `node` left or its routes are read again: forget all it announced. */
  dropNode(node: NodeId): void {
    this.announcing.delete(node);
    for (const filter of this.byNode.get(node) ?? []) this.remote.remove(filter, node);
    this.byNode.delete(node);
  }

  dropAll(): void {
    for (const node of [...this.byNode.keys(), ...this.announcing]) this.dropNode(node);
  }

  /** Must `node` answer a QoS 1 message on `topic` before its publisher is acknowledged? */
  mustAnswer(node: NodeId, topic: string): boolean {
    if (!this.announcing.has(node)) return true;
    if (this.byNode.size === 0) return false;
    return this.remote.matchAll(topic).includes(node);
  }
}
