import { test } from "node:test";
import assert from "node:assert/strict";
import { SessionBatchBuilder } from "./batch.ts";
import type { StoredMessage } from "./types.ts";

const msg = (id: string): StoredMessage => ({
  id,
  topic: "t",
  payload: new Uint8Array([1]),
  qos: 2,
  retain: false,
});
const meta = {
  kind: "meta",
  meta: { clientId: "a", protocolVersion: 4, expiryInterval: 60 },
} as const;
const send = (packetId: number, messageId: string, fromQueue = false) =>
  ({
    kind: "send",
    clientId: "a",
    fromQueue,
    inflight: { messageId, qos: 2, retain: false, packetId, released: false },
  }) as const;
const complete = (packetId: number, messageId: string) =>
  ({ kind: "complete", clientId: "a", packetId, messageId }) as const;

test("a delivery sent, released and completed in one batch leaves it, with its message", () => {
  const b = new SessionBatchBuilder().add(meta);
  b.message(msg("m1")).add(send(1, "m1"));
  b.message(msg("m2")).add(send(2, "m2"));
  b.add({ kind: "release", clientId: "a", packetId: 1 });
  b.add(complete(1, "m1"));
  assert.deepEqual(b.changes.get("a")!.map((c) => c.kind), ["meta", "send"]);
  assert.deepEqual(b.messages.map((m) => m.id), ["m2"]);
  b.add(complete(2, "m2"));
  assert.deepEqual(b.changes.get("a")!.map((c) => c.kind), ["meta"]);
  assert.equal(b.messages.length, 0);
});

test("a message another session still holds stays carried", () => {
  const b = new SessionBatchBuilder();
  b.message(msg("m")).add(send(1, "m"));
  b.message(msg("m")).add({
    kind: "enqueue",
    clientId: "b",
    delivery: { messageId: "m", qos: 2, retain: false },
  });
  b.add(complete(1, "m"));
  assert.deepEqual(b.changes.get("a"), [], "the client's group stays, empty");
  assert.deepEqual(b.messages.map((m) => m.id), ["m"]);
});

test("what cannot cancel is kept: a send from the queue, one of an earlier batch, one before a delete", () => {
  const b = new SessionBatchBuilder();
  b.message(msg("q")).add(send(1, "q", true)).add(complete(1, "q")); // its queue entry must go
  b.add(complete(2, "old")); // sent in an earlier batch
  b.message(msg("d")).add(send(3, "d")).add({ kind: "delete", clientId: "a" }).add(meta);
  b.add(complete(3, "d")); // not the delivery the delete already removed
  assert.deepEqual(b.changes.get("a")!.map((c) => c.kind), [
    "send",
    "complete",
    "complete",
    "send",
    "delete",
    "meta",
    "complete",
  ]);
  assert.deepEqual(b.messages.map((m) => m.id), ["q", "d"]);
});

test("a message whose uses all cancelled is carried again when a later change needs it", () => {
  const b = new SessionBatchBuilder();
  b.message(msg("m")).add(send(1, "m")).add(complete(1, "m"));
  assert.equal(b.messages.length, 0);
  b.message(msg("m")).add(send(2, "m"));
  assert.deepEqual(b.messages.map((m) => m.id), ["m"]);
});

test("pendingBefore: whether one of the first n sends is still waiting for its completion", () => {
  const b = new SessionBatchBuilder().add(meta);
  b.message(msg("m1")).add(send(1, "m1"));
  b.message(msg("m2")).add(send(2, "m2"));
  const first = b.sends;
  b.message(msg("m3")).add(send(3, "m3"));
  assert.equal(b.pendingBefore(first), true);
  b.add(complete(1, "m1"));
  assert.equal(b.pendingBefore(first), true);
  b.add(complete(2, "m2"));
  assert.equal(b.pendingBefore(first), false, "m3 came later");
  assert.equal(b.pendingBefore(b.sends), true);
  assert.equal(b.cancelled, 2);
});
