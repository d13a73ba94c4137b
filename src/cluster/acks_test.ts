import { test } from "node:test";
import assert from "node:assert/strict";
import { BUSY_RECORDS, CREDIT_RETURN, CREDIT_RETURN_MS, RemoteAcks } from "./acks.ts";
import { CREDIT_ACK, CREDIT_BYTES, creditCost, Credits } from "./credits.ts";
import { setImmediate } from "node:timers";
import type { BusMessage, ClusterBus, NodeId } from "./types.ts";

/** The part of a bus RemoteAcks uses: `send`, recorded. */
function recordingBus() {
  const sent: { to: NodeId; msg: BusMessage }[] = [];
  const bus = { send: (to: NodeId, msg: BusMessage) => void sent.push({ to, msg }) };
  return { bus: bus as unknown as ClusterBus, sent };
}

const nextTurn = () => new Promise((r) => setTimeout(r, 5));
const state = (p: Promise<void>) => {
  const s = { settled: "no" };
  p.then(() => s.settled = "ok", () => s.settled = "failed");
  return s;
};

test("acks: a turn's messages to one node share one wait, settled when every record is stored", async () => {
  const acks = new RemoteAcks(recordingBus().bus, 60_000);
  const first = acks.expect("b", 1);
  for (let i = 0; i < 9; i++) assert.equal(acks.expect("b", 1).id, first.id);
  const toBoth = acks.expect("b\0c", 2);
  assert.notEqual(toBoth.id, first.id, "another set of nodes, another wait");
  const s = state(first.stored), both = state(toBoth.stored);
  await nextTurn();
  const later = acks.expect("b", 1);
  assert.notEqual(later.id, first.id, "a new turn, a new wait");
  acks.received("b", [first.id], true, [6]);
  await nextTurn();
  assert.equal(s.settled, "no", "4 of 10 records not answered yet");
  acks.received("b", [first.id, toBoth.id], true, [4, 1]);
  await nextTurn();
  assert.equal(s.settled, "ok");
  assert.equal(both.settled, "no", "one of its two nodes answered");
  acks.received("b", [toBoth.id], true); // without counts: one record
  await nextTurn();
  assert.equal(both.settled, "ok");
  const l = state(later.stored);
  acks.received("b", [later.id], false);
  // A wait that fails while its turn is still open: the turn's next message gets a new one.
  const open = acks.expect("d", 1);
  const o = state(open.stored);
  acks.received("b", [open.id], false);
  const after = acks.expect("d", 1);
  assert.notEqual(after.id, open.id);
  await nextTurn();
  assert.equal(l.settled, "failed", "a node that could not store fails the whole wait");
  assert.equal(o.settled, "failed");
  const a = state(after.stored);
  acks.received("b", [after.id], true);
  await nextTurn();
  assert.equal(a.settled, "ok");
  acks.close();
});

test("acks: consecutive records stored together are answered once with their count", async () => {
  const { bus, sent } = recordingBus();
  const acks = new RemoteAcks(bus, 60_000);
  let store!: () => void;
  const batch = new Promise<void>((r) => store = r);
  for (let i = 0; i < 5; i++) acks.owe("a", 7, batch);
  acks.owe("a", 8, undefined); // nothing to store: answered at once
  acks.owe("a", 8, undefined);
  await nextTurn();
  assert.deepEqual(sent.map((s) => s.msg), [{ kind: "ack", ids: [8], ok: true, counts: [2] }]);
  acks.owe("a", 8, undefined); // after that answer went: a new one
  acks.owe("a", 7, batch); // not next to the other 7s: answered apart (both correct)
  store();
  await nextTurn();
  assert.deepEqual(sent.slice(1).map((s) => s.msg), [
    { kind: "ack", ids: [8, 7, 7], ok: true, counts: [1, 5, 1] },
  ]);
  let fail!: (e: Error) => void;
  const failing = new Promise<void>((_, r) => fail = r);
  acks.owe("a", 9, failing);
  acks.owe("c", 9, failing);
  fail(new Error("store down"));
  await nextTurn();
  assert.deepEqual(sent.slice(2), [
    { to: "a", msg: { kind: "ack", ids: [9], ok: false } },
    { to: "c", msg: { kind: "ack", ids: [9], ok: false } },
  ]);
  acks.close();
});

test("acks: a few records are answered at the end of their turn, many with the next ms's", async () => {
  const { bus, sent } = recordingBus();
  const acks = new RemoteAcks(bus, 60_000);
  acks.owe("a", 7, undefined);
  acks.owe("a", 7, undefined);
  await new Promise((r) => setImmediate(r)); // queued after the answer's: the turn's end
  assert.deepEqual(sent.map((s) => s.msg), [{ kind: "ack", ids: [7], ok: true, counts: [2] }]);
  for (let i = 0; i < BUSY_RECORDS; i++) acks.owe("a", 8, undefined);
  await new Promise((r) => setImmediate(r));
  assert.equal(sent.length, 1, "a busy turn's answers wait for the timer");
  acks.owe("a", 9, undefined); // the next turn's join them
  await nextTurn();
  assert.deepEqual(sent.slice(1).map((s) => s.msg), [
    { kind: "ack", ids: [8, 9], ok: true, counts: [BUSY_RECORDS, 1] },
  ]);
  acks.close();
});

test("acks: credit is handed back in bulk, or after a while at a low rate", async () => {
  const { bus, sent } = recordingBus();
  const acks = new RemoteAcks(bus, 60_000);
  acks.routedOnCredit("a", CREDIT_RETURN - 100);
  acks.routedOnCredit("c", 300);
  await new Promise((r) => setImmediate(r));
  assert.equal(sent.length, 0, "below CREDIT_RETURN: no answer of its own at the turn's end");
  acks.routedOnCredit("a", 100); // CREDIT_RETURN from a: back at the end of this turn
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(sent, [
    { to: "a", msg: { kind: "ack", ids: [CREDIT_ACK], ok: true, counts: [CREDIT_RETURN] } },
    { to: "c", msg: { kind: "ack", ids: [CREDIT_ACK], ok: true, counts: [300] } },
  ]);
  acks.routedOnCredit("a", 200);
  acks.owe("a", 7, undefined); // an answer owed anyway: the credit rides along
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(sent.slice(2).map((s) => s.msg), [
    { kind: "ack", ids: [7, CREDIT_ACK], ok: true, counts: [1, 200] },
  ]);
  acks.routedOnCredit("c", 100); // alone, a little: the timer hands it back
  await new Promise((r) => setTimeout(r, CREDIT_RETURN_MS / 2));
  assert.equal(sent.length, 3);
  await new Promise((r) => setTimeout(r, CREDIT_RETURN_MS * 2));
  assert.deepEqual(sent.slice(3), [
    { to: "c", msg: { kind: "ack", ids: [CREDIT_ACK], ok: true, counts: [100] } },
  ]);
  acks.close();
});

test("acks: credit handed back by another node is lent again", () => {
  const acks = new RemoteAcks(recordingBus().bus, 60_000);
  const cost = CREDIT_BYTES / 8;
  for (let i = 0; i < 8; i++) assert.ok(acks.credits.take("b", cost));
  assert.equal(acks.credits.take("b", 1), false, "used up: the next message waits for its answer");
  assert.ok(acks.credits.take("c", cost), "each node lends its own");
  acks.received("b", [CREDIT_ACK], true, [2 * cost]);
  assert.ok(acks.credits.take("b", cost) && acks.credits.take("b", cost));
  assert.equal(acks.credits.take("b", 1), false);
  acks.credits.forget("b"); // it left or restarted: what it owed is void
  assert.ok(acks.credits.take("b", cost));
  acks.close();
});

test("credits: larger than all the credit goes alone; used up past the timeout, forgiven", () => {
  let now = 1_000;
  const credits = new Credits(30, 100, () => now);
  assert.ok(credits.take("b", 500), "nothing used: a message larger than the credit still goes");
  assert.equal(credits.take("b", 1), false);
  credits.returned("b", 500);
  assert.ok(credits.take("b", 60));
  assert.equal(credits.take("b", 60), false, "60 + 60 > 100");
  assert.ok(credits.take("b", 40));
  assert.equal(credits.take("b", 1), false);
  now += 29;
  assert.equal(credits.take("b", 1), false, "not yet");
  now += 1;
  assert.ok(credits.take("b", 50), "forgiven after forgiveMs (answers lost)");
  assert.ok(credits.take("b", 50));
  assert.equal(credits.take("b", 1), false);
  credits.returned("b", 5000); // more than used: never below zero
  assert.ok(credits.take("b", 100));
  assert.equal(credits.used("b"), 100);
  now += 20;
  assert.equal(credits.take("b", 1), false); // used up from here...
  now += 20;
  credits.returned("b", 10); // ...but something came back: no forgiveness
  now += 20;
  assert.ok(credits.take("b", 10));
  assert.equal(credits.take("b", 1), false);
});

test("credits: the cost counts a 5.0 message's properties", () => {
  const payload = new Uint8Array(10);
  const plain = creditCost({ topic: "t", payload, qos: 1, retain: false });
  const userProperties: [string, string][] = [["k", "v".repeat(1000)]];
  const heavy = creditCost({
    topic: "t",
    payload,
    qos: 1,
    retain: false,
    properties: { userProperties },
  });
  assert.ok(heavy >= plain + 1000, `${heavy} against ${plain}`);
});
