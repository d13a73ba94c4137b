/**
 * This node's routes as the other nodes must see them: a filter while any subscription here
 * holds it, and its durable key (durable_routes.ts) while a persistent session's does. A session's
 * persistence can change while it is subscribed (resumed with another expiry, or a 5.0
 * DISCONNECT setting it), so each session's subscriptions are counted with the persistence they
 * were announced with, and moved over when it changes: a filter is never left without its durable
 * key while a persistent session holds it, nor kept durable for one that is gone.
 *
 * A share group's filter also has its online key (route_table.ts) while a session that is
 * connected here holds it: the others give this node the group's turns only then, unless no
 * member is online anywhere. Each online session's counted share filters are kept, so connects,
 * disconnects, subscribes and hand-overs may come in any order without counting one twice.
 */
import type { Session } from "../broker/session.ts";
import { routeFilter } from "../broker/session_subscriptions.ts";
import { DURABLE_PREFIX } from "./durable_routes.ts";
import { ONLINE_PREFIX } from "./route_table.ts";

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
  /** `$share/...` filters and how many online sessions' subscriptions hold each. */
  private readonly online = new Map<string, number>();
  /** Each online session's share filters counted in `online`. */
  private readonly onlineFilters = new WeakMap<Session, Set<string>>();

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
    const mine = this.onlineFilters.get(session);
    if (mine && isShare(filter)) this.addOnline(mine, filter);
  }

  unsubscribed(filter: string, session: Session): void {
    if (this.withdrawn.has(session)) return; // counted out already
    // The online key first: no node may see it here without the filter itself.
    this.removeOnline(this.onlineFilters.get(session), filter);
    if (remove(this.counts, filter)) this.announce(filter, false);
    if (this.counted.get(session)) this.removeDurable(filter); // after the filter: the reverse
  }

  /** `session` is now connected here (`on`) or not: its share filters' online keys follow. */
  connected(session: Session, on: boolean): void {
    const mine = this.onlineFilters.get(session);
    if (!on) {
      for (const filter of mine ?? []) this.removeOnline(mine, filter);
      this.onlineFilters.delete(session);
      return;
    }
    if (mine || this.withdrawn.has(session)) return; // counted already, or handed on
    const filters = new Set<string>();
    this.onlineFilters.set(session, filters);
    for (const sub of session.subscriptions.values()) {
      if (sub.group !== undefined) this.addOnline(filters, routeFilter(sub));
    }
  }

  /**
   * Withdraw the routes (`filters`) of a session that stays in the index a while longer (handed
   * to another node, handover.ts): its later removals announce nothing.
   */
  withdraw(session: Session, filters: readonly string[]): void {
    if (!this.counted.has(session)) return;
    for (const filter of filters) this.unsubscribed(filter, session);
    this.connected(session, false);
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

  private addOnline(mine: Set<string>, filter: string): void {
    if (mine.has(filter)) return;
    mine.add(filter);
    if (add(this.online, filter)) this.announce(ONLINE_PREFIX + filter, true);
  }

  private removeOnline(mine: Set<string> | undefined, filter: string): void {
    if (!mine?.delete(filter)) return;
    if (remove(this.online, filter)) this.announce(ONLINE_PREFIX + filter, false);
  }

  private addDurable(filter: string): void {
    // A share group's message is always answered (node.ts): its filters need no durable key.
    if (isShare(filter)) return;
    if (add(this.durable, filter)) this.announce(DURABLE_PREFIX + filter, true);
  }

  private removeDurable(filter: string): void {
    if (isShare(filter)) return;
    if (remove(this.durable, filter)) this.announce(DURABLE_PREFIX + filter, false);
  }
}

function isShare(filter: string): boolean {
  return filter.startsWith("$share/");
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
