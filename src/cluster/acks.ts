/**
 * Acknowledged means kept, across nodes: a QoS 1/2 message forwarded to other
 * nodes is acknowledged to its publisher only once every node that got it has
 * stored it for its persistent sessions (each answers with an `ack` after its
 * session batch is written). A node that does not answer within the timeout,
 * or cannot store, fails the wait: the publisher gets no PUBACK/PUBREC and
 * sends again.
 */
import type { ClusterBus, NodeId } from "./types.ts";

interface Waiting {
  left: number;
  resolve: () => void;
  reject: (e: Error) => void;
  /** ms since epoch after which the wait fails. */
  deadline: number;
}

export class RemoteAcks {
  /**
   * Random start: an answer meant for an earlier run of this node (a bus that keeps messages
   * for a restarting node delivers it late) must not match one of this run's ids.
   */
  private next = 1 + Math.floor(Math.random() * 2 ** 48);
  private readonly waiting = new Map<number, Waiting>();
  /** Answers this node owes, per origin node, sent together once per turn. */
  private readonly owed = new Map<NodeId, { ok: number[]; failed: number[] }>();
  private flushing = false;
  /**
   * One timer for all waits, not one per message (a timer per forwarded QoS 1 message cost
   * ~10% of the sending node's CPU in a cross-node S4 profile). Every wait has the same
   * timeout, so `waiting`'s insertion order is deadline order.
   */
  private sweeper: ReturnType<typeof setTimeout> | undefined;

  constructor(private readonly bus: ClusterBus, private readonly timeoutMs: number) {}

  /** A new ack id for a message sent to `nodes` nodes, and the promise of their answers. */
  expect(nodes: number): { id: number; stored: Promise<void> } {
    const id = this.next++;
    const deadline = Date.now() + this.timeoutMs;
    const stored = new Promise<void>((resolve, reject) => {
      this.waiting.set(id, { left: nodes, resolve, reject, deadline });
    });
    this.sweeper ??= setTimeout(() => this.sweep(), this.timeoutMs);
    stored.catch(() => {}); // whoever waits handles it; nobody waiting is no crash
    return { id, stored };
  }

  /** Answers from another node. */
  received(ids: readonly number[], ok: boolean): void {
    for (const id of ids) {
      const w = this.waiting.get(id);
      if (!w) continue;
      if (!ok) {
        this.waiting.delete(id);
        w.reject(new Error("another node could not store the message"));
      } else if (--w.left === 0) {
        this.waiting.delete(id);
        w.resolve();
      }
    }
  }

  /** Answer `node` for ack `id` once `stored` settles (undefined: nothing to wait for). */
  owe(node: NodeId, id: number, stored: Promise<void> | undefined): void {
    if (!stored) return this.add(node, id, true);
    stored.then(() => this.add(node, id, true), () => this.add(node, id, false));
  }

  close(): void {
    clearTimeout(this.sweeper);
    for (const [id, w] of this.waiting) {
      this.waiting.delete(id);
      w.reject(new Error("cluster stopped"));
    }
  }

  /** Fail the waits past their deadline; come back at the next one's. */
  private sweep(): void {
    this.sweeper = undefined;
    const now = Date.now();
    for (const [id, w] of this.waiting) {
      if (w.deadline > now) {
        this.sweeper = setTimeout(() => this.sweep(), w.deadline - now);
        return;
      }
      this.waiting.delete(id);
      w.reject(new Error("another node did not confirm it stored the message"));
    }
  }

  private add(node: NodeId, id: number, ok: boolean): void {
    let o = this.owed.get(node);
    if (!o) this.owed.set(node, o = { ok: [], failed: [] });
    (ok ? o.ok : o.failed).push(id);
    if (this.flushing) return;
    this.flushing = true;
    setTimeout(() => this.flush(), 0);
  }

  private flush(): void {
    this.flushing = false;
    for (const [node, o] of this.owed) {
      if (o.ok.length > 0) this.bus.send(node, { kind: "ack", ids: o.ok, ok: true });
      if (o.failed.length > 0) this.bus.send(node, { kind: "ack", ids: o.failed, ok: false });
    }
    this.owed.clear();
  }
}
