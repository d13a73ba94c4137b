import { test } from "node:test";
import assert from "node:assert/strict";
import { LocalRoutes } from "./local_routes.ts";
import { ONLINE_PREFIX } from "./route_table.ts";
import type { Session, Subscription } from "../broker/session.ts";

/** A session as LocalRoutes reads it: its subscriptions and expiry. */
function session(expiryInterval = 0): Session & { subs: Map<string, Subscription> } {
  const subs = new Map<string, Subscription>();
  return { subscriptions: subs, expiryInterval, subs } as unknown as Session & {
    subs: Map<string, Subscription>;
  };
}

function share(s: Session, group: string, filter: string): string {
  const full = `$share/${group}/${filter}`;
  (s as unknown as { subs: Map<string, Subscription> }).subs.set(full, {
    session: s,
    filter: full,
    matchFilter: filter,
    group,
    qos: 1,
    noLocal: false,
    retainAsPublished: false,
    retainHandling: 0,
  });
  return full;
}

/** The online keys present after the announcements so far. */
function recorder() {
  const present = new Set<string>();
  const log: string[] = [];
  const routes = new LocalRoutes((key, on) => {
    log.push((on ? "+" : "-") + key.replace(ONLINE_PREFIX, "online:"));
    if (on) present.add(key);
    else present.delete(key);
  });
  const online = () => [...present].filter((k) => k.startsWith(ONLINE_PREFIX)).length;
  return { routes, present, log, online };
}

test("a share filter is online while a connected session holds it", () => {
  const { routes, log } = recorder();
  const s = session(3600);
  routes.connected(s, true);
  const f = share(s, "g", "t");
  routes.subscribed(f, s);
  routes.connected(s, false);
  routes.connected(s, true);
  routes.unsubscribed(f, s);
  assert.deepEqual(log, [
    "+$share/g/t",
    "+online:$share/g/t", // after the filter: no node sees it online without it
    "-online:$share/g/t",
    "+online:$share/g/t",
    "-online:$share/g/t", // before the filter
    "-$share/g/t",
  ]);
});

test("an offline session's share filters are not online; plain filters never", () => {
  const { routes, online } = recorder();
  const s = session(3600);
  routes.subscribed(share(s, "g", "t"), s); // restored: not connected
  routes.subscribed("plain/#", s);
  assert.equal(online(), 0);
  routes.connected(s, true);
  assert.equal(online(), 1);
});

test("two online members: online until the last goes; repeats count once", () => {
  const { routes, present, online } = recorder();
  const [a, b] = [session(), session()];
  for (const s of [a, b]) {
    routes.connected(s, true);
    routes.subscribed(share(s, "g", "t"), s);
  }
  routes.connected(a, true); // (again: a connect after a takeover here)
  routes.connected(a, false);
  assert.equal(online(), 1);
  routes.connected(a, false); // (again)
  assert.equal(online(), 1);
  routes.unsubscribed("$share/g/t", b);
  routes.connected(b, false); // after its unsubscribe: nothing left to withdraw
  assert.equal(online(), 0);
  assert.ok(present.has("$share/g/t"), "a's subscription still holds the filter");
});

test("a withdrawn session's online keys go, and a later connect adds none", () => {
  const { routes, present } = recorder();
  const s = session(3600);
  routes.connected(s, true);
  const f = share(s, "g", "t");
  routes.subscribed(f, s);
  routes.withdraw(s, [f]);
  assert.deepEqual([...present], []);
  routes.connected(s, true);
  routes.connected(s, false);
  assert.deepEqual([...present], []);
});
