/**
 * This node's routes as the other nodes must see them: a filter while any subscription here
 * holds it, and its durable key (durable_routes.ts) while a persistent session's does. A session's
 * persistence can change while it is subscribed (resumed with another expiry, or a 5.0
 * DISCONNECT setting it), so each session's subscriptions are counted with the persistence they
 * were announced with, and moved over when it changes: a filter is never left without its durable
 * key while a persistent session holds it, nor kept durable for one that is gone.
 */
import type { Session } from "../broker/session.ts";
import { DURABLE_PREFIX } from "./durable_routes.ts";

/** Announces (`present`) or withdraws a route key on the bus. */
export type Announce = (key: string, present: boolean) => void;

export class LocalRoutes {
  /** Filters (plain and `$share/...`) and how many subscriptions hold each. */
  private readonly counts = new Map<string, number>();
  /** Plain filters and how many persistent sessions' subscriptions hold each. */
  private readonly durable = new Map<string, number>();
  /** The persistence each session's subscriptions are counted with. */
  private readonly counted = new WeakMap<Session, boolean>();
  /** Sessions whose routes were withdrawn while they stay in the index (withdraw). */
  private readonly withdrawn = new WeakSet<Session>();

  constructor(private readonly announce: Announce) {}

  /** Whether `session`'s subscriptions are counted (announced) already. */
  announced(session: Session): boolean {
    return this.counted.has(session);
  }

  has(filter: string): boolean {
    return this.counts.has(filter);
  }

  subscribed(filter: string, session: Session): void {
    let durable = this.counted.get(session);
    if (durable === undefined) this.counted.set(session, durable = session.expiryInterval !== 0);
    // The durable key first: no node may see the filter here without it and skip an answer.
    if (durable) this.addDurable(filter);
    if (add(this.counts, filter)) this.announce(filter, true);
  }

  unsubscribed(filter: string, session: Session): void {
    if (this.withdrawn.has(session)) return; // counted out already
    if (remove(this.counts, filter)) this.announce(filter, false);
    if (this.counted.get(session)) this.removeDurable(filter); // after the filter: the reverse
  }

  /**
   * Withdraw the routes (`filters`) of a session that stays in the index a while longer (handed
   * to another node, handover.ts): its later removals announce nothing.
   */
  withdraw(session: Session, filters: readonly string[]): void {
    if (!this.counted.has(session)) return;
    for (const filter of filters) this.unsubscribed(filter, session);
    this.counted.delete(session);
    this.withdrawn.add(session);
  }

  /** `session`'s expiry was set: move its filters' durable counts if its persistence changed. */
  expiryChanged(session: Session): void {
    const was = this.counted.get(session);
    const now = session.expiryInterval !== 0;
    if (was === undefined || was === now) return;
    this.counted.set(session, now);
    for (const sub of session.subscriptions.values()) {
      if (sub.group !== undefined) continue;
      if (now) this.addDurable(sub.matchFilter);
      else this.removeDurable(sub.matchFilter);
    }
  }

  private addDurable(filter: string): void {
    // A share group's message is always answered (node.ts): its filters need no durable key.
    if (filter.startsWith("$share/")) return;
    if (add(this.durable, filter)) this.announce(DURABLE_PREFIX + filter, true);
  }

  private removeDurable(filter: string): void {
    if (filter.startsWith("$share/")) return;
    if (remove(this.durable, filter)) this.announce(DURABLE_PREFIX + filter, false);
  }
}

/** Counts one more holder of `key`; true for the first. */
function add(counts: Map<string, number>, key: string): boolean {
  const n = counts.get(key) ?? 0;
  counts.set(key, n + 1);
  return n === 0;
}

/** Counts one holder of `key` less; true for the last. */
function remove(counts: Map<string, number>, key: string): boolean {
  const n = counts.get(key);
  if (n === undefined) return false;
  if (n > 1) counts.set(key, n - 1);
  else counts.delete(key);
  return n === 1;
}
