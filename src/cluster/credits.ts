/**
 * Credit for QoS 1 messages forwarded to another node's clean sessions alone. Such a message
 * needs no answer to be kept (durable_routes.ts), but the answers were also the cluster's flow
 * control: without them a publisher's node takes messages as fast as its CPU allows and the
 * excess waits in the bus and the receiving node until the subscribers' queue bounds drop it
 * (cross-node S4 flat out fell to 0.47x one node, p99 ~800 ms; bench/notes/cluster_hops.md).
 *
 * So each destination node lends this node CREDIT_BYTES of such messages: while it has credit,
 * a message goes with ack id CREDIT_ACK and its publisher's PUBACK waits for nothing; the
 * receiver hands the credit back in bulk once it has routed them (acks.ts). Without credit, a
 * message waits for its answer as before, so what is in flight between two nodes stays bounded
 * by the credit plus the publishers' windows. Bytes, not messages: Redis closes a subscriber
 * whose output buffer passes `client-output-buffer-limit pubsub` (32 MB by default).
 */
import type { Message } from "../broker/message.ts";
import type { NodeId } from "./types.ts";

/** Ack id of a message sent on credit: answered in bulk, nobody waits for it. Real ids are ≥ 1. */
export const CREDIT_ACK = 0;
/** Credit one node may have unanswered at another (~1,500 messages of 256 B). */
export const CREDIT_BYTES = 512 * 1024;

/** What a message costs in credit: about its size on the bus (both ends count the same). */
export function creditCost(message: Message): number {
  let cost = 64 + message.topic.length + message.payload.length + (message.from?.length ?? 0);
  const p = message.properties;
  if (p) { // 5.0: user properties may outweigh the payload
    cost += 64 + (p.responseTopic?.length ?? 0) + (p.correlationData?.length ?? 0) +
      (p.contentType?.length ?? 0);
    for (const [k, v] of p.userProperties ?? []) cost += 8 + k.length + v.length;
  }
  return cost;
}

export class Credits {
  /** Per destination: credit used and not yet handed back, and since when it ran out. */
  private readonly out = new Map<NodeId, { n: number; exhausted: number }>();

  /**
   * @param forgiveMs A node whose credit stayed used up this long, nothing handed back, gets it
   *   all back: credit lost with the bus (Redis dropped pub/sub messages, the node restarted
   *   under the same id) must not leave it waiting for every answer for good. Lost credit
   *   shrinks what is left until then; nothing is lost, the messages past it wait.
   */
  constructor(
    private readonly forgiveMs: number,
    private readonly limit = CREDIT_BYTES,
    private readonly now = Date.now,
  ) {}

  /** Credit in use at `node`. */
  used(node: NodeId): number {
    return this.out.get(node)?.n ?? 0;
  }

  /**
   * Take `cost` of credit for a message to `node`: false when too little is left (the message
   * waits for its answer). A message larger than all the credit goes when none is used.
   */
  take(node: NodeId, cost: number): boolean {
    let c = this.out.get(node);
    if (!c) this.out.set(node, c = { n: 0, exhausted: 0 });
    if (c.n === 0 || c.n + cost <= this.limit) {
      c.n += cost;
      return true;
    }
    const now = this.now();
    if (c.exhausted === 0) c.exhausted = now;
    else if (now - c.exhausted >= this.forgiveMs) {
      c.n = cost;
      c.exhausted = 0;
      return true;
    }
    return false;
  }

  /** `node` routed messages sent on credit that cost `n`. */
  returned(node: NodeId, n: number): void {
    const c = this.out.get(node);
    if (!c) return;
    c.n = Math.max(0, c.n - n);
    c.exhausted = 0;
  }

  /** What `node` owes is void (it left, restarted, or the bus lost what was in flight). */
  forget(node?: NodeId): void {
    if (node === undefined) this.out.clear();
    else this.out.delete(node);
  }
}
