/**
 * Knowing when every other node has applied this node's route changes: a node that withdrew a
 * moving session's routes (handover.ts) forgets the session only once no node can still send
 * it a message for it.
 *
 * On the Redis bus a node reads route changes and frames on one connection, in the order Redis
 * ran them; so once this node's route changes are applied in Redis (routesApplied), a `sync`
 * broadcast after them reaches each node after them, and its `synced` answer comes back after
 * every frame that node sent before it saw them. Other buses (Kafka carries the frames, Redis
 * the routes) give no such order: `all()` is undefined there and the caller waits its timeout.
 */
import type { ClusterBus, NodeId } from "./types.ts";

export class RouteSync {
  private next = 1;
  private readonly waits = new Map<number, { left: Set<NodeId>; done: () => void }>();

  constructor(private readonly bus: ClusterBus) {}

  /** Resolves once every other live node answered a sync sent after this node's route changes. */
  all(): Promise<void> | undefined {
    if (!this.bus.routesInOrder) return undefined;
    return (this.bus.routesApplied?.() ?? Promise.resolve()).then(() => {
      const left = new Set(
        this.bus.nodes().map((n) => n.id).filter((id) => id !== this.bus.nodeId),
      );
      if (left.size === 0) return;
      const id = this.next++;
      return new Promise<void>((done) => {
        this.waits.set(id, { left, done });
        this.bus.broadcast({ kind: "sync", id });
      });
    });
  }

  /** `from` answered sync `id`. */
  synced(from: NodeId, id: number): void {
    const w = this.waits.get(id);
    if (!w) return;
    w.left.delete(from);
    this.settle(id, w);
  }

  /** A node that is gone sends nothing more: not waited for. */
  nodeDown(node: NodeId): void {
    for (const [id, w] of this.waits) {
      w.left.delete(node);
      this.settle(id, w);
    }
  }

  private settle(id: number, w: { left: Set<NodeId>; done: () => void }): void {
    if (w.left.size > 0) return;
    this.waits.delete(id);
    w.done();
  }
}
