/**
 * Every change to a session's subscriptions: the session's own map, the topic
 * index that routes to it, the cluster's routes (first and last subscription
 * of a filter on this node) and the journal, kept in step.
 */
import { parseShared } from "../mqtt/topic.ts";
import type { StoredSubscription } from "../store/types.ts";
import type { Broker } from "./broker.ts";
import type { ClientInfo } from "./hooks.ts";
import { type Session, type Subscription, writableState } from "./session.ts";
import { escapeForLog } from "../log/escape.ts";

/** A subscription of `session` with the options as given (a `$share/group/` filter is parsed). */
export function subscription(
  session: Session,
  s: StoredSubscription,
): Subscription {
  const shared = parseShared(s.filter);
  return {
    session,
    filter: s.filter,
    matchFilter: shared ? shared.filter : s.filter,
    group: shared?.group,
    qos: s.qos,
    noLocal: s.noLocal ?? false,
    retainAsPublished: s.retainAsPublished ?? false,
    retainHandling: s.retainHandling ?? 0,
    subscriptionId: s.subscriptionId,
  };
}

/** The key a subscription has in the index: one entry per client per filter (and share group). */
export function indexKey(session: Session, group: string | undefined): string {
  return group === undefined ? session.clientId : group + "\0" + session.clientId;
}

/** The filter a subscription routes by: its match filter, with its share group if any. */
export function routeFilter(sub: Subscription): string {
  return sub.group === undefined ? sub.matchFilter : `$share/${sub.group}/${sub.matchFilter}`;
}

/** SUBSCRIBE: add or replace the subscription with this filter [MQTT-3.8.4-3]; returns the old one. */
export function addSubscription(broker: Broker, sub: Subscription): Subscription | undefined {
  const subs = writableState(sub.session).subscriptions;
  const previous = subs.get(sub.filter);
  subs.set(sub.filter, sub);
  const replaced = broker.router.index.add(
    sub.matchFilter,
    indexKey(sub.session, sub.group),
    sub,
  );
  if (!replaced && broker.cluster) {
    broker.cluster.subscribed(routeFilter(sub), sub.session);
  }
  sub.session.journal?.subscribed(sub);
  return previous;
}

/** UNSUBSCRIBE (or the session ends): false when there was no such subscription. */
export function removeSubscription(broker: Broker, session: Session, filter: string): boolean {
  const sub = session.subscriptions.get(filter);
  if (!sub) return false;
  writableState(session).subscriptions.delete(filter);
  session.replay?.cancel(filter); // no more retained messages for it [MQTT-3.10.4-2]
  broker.router.index.remove(sub.matchFilter, indexKey(session, sub.group));
  broker.cluster?.unsubscribed(routeFilter(sub), session);
  session.journal?.unsubscribed(session, filter);
  return true;
}

/**
 * Loaded from the store: back in the session and the index, nothing written back; a
 * cluster node announces restored routes itself (ClusterNode.announceRestored).
 */
export function restoreSubscription(broker: Broker, session: Session, s: StoredSubscription): void {
  const live = subscription(session, s);
  writableState(session).subscriptions.set(s.filter, live);
  broker.router.index.add(live.matchFilter, indexKey(session, live.group), live);
}

/**
 * A resumed session keeps only the subscriptions its (new) user may still make: rights can
 * change between connections, and another user may resume it (allow-cross-user-session).
 */
export function recheckSubscriptions(broker: Broker, session: Session, client: ClientInfo): void {
  let removed = 0;
  for (const sub of [...session.subscriptions.values()]) {
    if (broker.maySubscribe(client, sub.filter, sub.qos)) continue;
    removeSubscription(broker, session, sub.filter);
    removed++;
  }
  if (removed > 0) {
    broker.log(
      `client ${escapeForLog(client.clientId)}: ${removed} subscription(s) of its resumed ` +
        `session removed, not allowed for user ${escapeForLog(client.username ?? "(none)")}`,
    );
  }
}
