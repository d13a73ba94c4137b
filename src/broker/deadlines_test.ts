import { test } from "node:test";
import assert from "node:assert/strict";
import { SessionDeadlines } from "./deadlines.ts";
import { createSession } from "./session.ts";

test("deadlines: due wills before due expiries, cleared ones never, far ones not early", () => {
  const d = new SessionDeadlines();
  const a = createSession("a", 60), b = createSession("b", 60), c = createSession("c", 60);
  const now = 1_000_000;
  d.setExpiry(a, now + 10);
  d.setWill(a, now + 5);
  d.setExpiry(b, now + 10);
  d.clearExpiry(b);
  d.setExpiry(c, now + 40 * 86_400_000); // 40 days: past a runtime timer's 24.8-day range
  const seen: string[] = [];
  const sweep = (t: number) =>
    d.sweep(t, (s) => seen.push(`will ${s.clientId}`), (s) => seen.push(`end ${s.clientId}`));
  sweep(now);
  assert.deepEqual(seen, []);
  sweep(now + 10);
  assert.deepEqual(seen, ["will a", "end a"]);
  sweep(now + 30 * 86_400_000);
  assert.deepEqual(seen, ["will a", "end a"]);
  assert.equal(d.expiresAt(c), now + 40 * 86_400_000);
  sweep(now + 40 * 86_400_000);
  assert.deepEqual(seen, ["will a", "end a", "end c"]);
  assert.equal(d.expiresAt(a), undefined);
  assert.equal(d.willAt(a), undefined);
});

test("deadlines: a deadline set after a sweep found nothing due is still seen", () => {
  const d = new SessionDeadlines();
  const a = createSession("a", 60), b = createSession("b", 60);
  d.setExpiry(a, 100);
  const ended: string[] = [];
  d.sweep(50, () => {}, (s) => ended.push(s.clientId));
  d.setExpiry(b, 60); // earlier than the one the sweep remembered
  d.sweep(70, () => {}, (s) => ended.push(s.clientId));
  assert.deepEqual(ended, ["b"]);
});
