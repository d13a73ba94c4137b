/**
 * The one contract test suite every store passes (ARCHITECTURE principle 4):
 * tests/store_memory_test.ts and tests/store_redis_test.ts run it against
 * their store with a few lines each.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { SessionBatchBuilder } from "./batch.ts";
import { MessageIds } from "./ids.ts";
import { runRetainedContract } from "./contract_retained.ts";
import type {
  RetainedStore,
  SessionChange,
  SessionMeta,
  SessionStore,
  StoredInflight,
  StoredMessage,
  StoredSession,
} from "./types.ts";

export interface StoreBackend {
  /** A store on this backend; every store opened on one backend sees the same data. */
  open(): Promise<{ sessions: SessionStore; retained: RetainedStore }>;
  /** Messages held by the backend (to prove none is leaked). */
  storedMessageCount(): Promise<number>;
  /** True when a newly opened store sees the retained messages of an earlier one. */
  readonly durableRetained: boolean;
  dispose(): Promise<void>;
}

export type StoreTest = (
  s: { sessions: SessionStore; retained: RetainedStore },
  backend: StoreBackend,
) => Promise<void>;

export interface ContractOptions {
  /** A fresh, empty backend per test. */
  backend(): Promise<StoreBackend>;
  skip?: string | false;
  timeout?: number;
}

const ids = new MessageIds();

function message(
  topic: string,
  payload: string,
  extra: Partial<StoredMessage> = {},
): StoredMessage {
  return {
    id: ids.next(),
    topic,
    payload: new TextEncoder().encode(payload),
    qos: 1,
    retain: false,
    ...extra,
  };
}

function meta(clientId: string, extra: Partial<SessionMeta> = {}): SessionMeta {
  return { clientId, protocolVersion: 5, expiryInterval: 3600, ...extra };
}

const text = (b: Uint8Array) => new TextDecoder().decode(b);

function session(sessions: readonly StoredSession[], clientId: string): StoredSession {
  const s = sessions.find((x) => x.clientId === clientId);
  assert.ok(s, `session ${clientId} loaded`);
  return s;
}

export function runStoreContract(name: string, options: ContractOptions): void {
  const opts = { skip: options.skip ?? false, timeout: options.timeout ?? 20_000 };

  /** Run `body` with a fresh backend and a store on it; closes and disposes after. */
  async function withStore(body: StoreTest): Promise<void> {
    const backend = await options.backend();
    const store = await backend.open();
    try {
      await body(store, backend);
    } finally {
      await store.sessions.close();
      await store.retained.close();
      await backend.dispose();
    }
  }

  /** What a newly opened store on the same backend loads. */
  async function reload(backend: StoreBackend) {
    const again = await backend.open();
    try {
      return await again.sessions.load();
    } finally {
      await again.sessions.close();
      await again.retained.close();
    }
  }

  describe(`store contract: ${name}`, () => {
    test("an empty store loads no sessions", opts, () =>
      withStore(async ({ sessions }) => {
        const state = await sessions.load();
        assert.equal(state.sessions.length, 0);
        assert.equal(state.messages.size, 0);
      }));

    test(
      "session meta and subscriptions round-trip, will bytes and properties included",
      opts,
      () =>
        withStore(async ({ sessions }, backend) => {
          const will = {
            topic: "last/will",
            payload: new Uint8Array([0, 1, 2, 255]),
            qos: 2 as const,
            retain: true,
            properties: {
              contentType: "bin",
              correlationData: new Uint8Array([9, 8]),
              userProperties: [["k", "v"]] as [string, string][],
            },
            delayInterval: 30,
          };
          const b = new SessionBatchBuilder()
            .add({
              kind: "meta",
              meta: meta("c/1 {x}", { username: "ann", will, willAt: 1234, expiresAt: 5678 }),
            })
            .add({ kind: "subscribe", clientId: "c/1 {x}", sub: { filter: "a/+", qos: 1 } })
            .add({
              kind: "subscribe",
              clientId: "c/1 {x}",
              sub: {
                filter: "$share/g/b/#",
                qos: 2,
                noLocal: true,
                retainAsPublished: true,
                retainHandling: 2,
                subscriptionId: 7,
              },
            })
            .add({ kind: "meta", meta: meta("plain", { protocolVersion: 4 }) });
          await sessions.write(b);
          const state = await reload(backend);
          assert.equal(state.sessions.length, 2);
          const s = session(state.sessions, "c/1 {x}");
          assert.equal(s.username, "ann");
          assert.equal(s.expiryInterval, 3600);
          assert.equal(s.expiresAt, 5678);
          assert.equal(s.willAt, 1234);
          assert.equal(s.will?.topic, "last/will");
          assert.deepEqual([...s.will!.payload], [0, 1, 2, 255]);
          assert.equal(s.will?.qos, 2);
          assert.equal(s.will?.retain, true);
          assert.equal(s.will?.delayInterval, 30);
          assert.deepEqual([...s.will!.properties!.correlationData!], [9, 8]);
          assert.deepEqual(s.will?.properties?.userProperties, [["k", "v"]]);
          assert.deepEqual(
            [...s.subscriptions].sort((a, b) => a.filter.localeCompare(b.filter)),
            [
              {
                filter: "$share/g/b/#",
                qos: 2,
                noLocal: true,
                retainAsPublished: true,
                retainHandling: 2,
                subscriptionId: 7,
              },
              { filter: "a/+", qos: 1 },
            ],
          );
          const p = session(state.sessions, "plain");
          assert.equal(p.protocolVersion, 4);
          assert.equal(p.username, undefined);
          assert.equal(p.will, undefined);
          assert.equal(p.lastPacketId, 0);
        }),
    );

    test(
      "replacing meta keeps subscriptions; unsubscribe removes one",
      opts,
      () =>
        withStore(async ({ sessions }, backend) => {
          await sessions.write(
            new SessionBatchBuilder()
              .add({ kind: "meta", meta: meta("c", { expiresAt: 10, username: "u" }) })
              .add({ kind: "subscribe", clientId: "c", sub: { filter: "x", qos: 0 } })
              .add({ kind: "subscribe", clientId: "c", sub: { filter: "y", qos: 1 } }),
          );
          await sessions.write(
            new SessionBatchBuilder()
              .add({ kind: "meta", meta: meta("c", { expiryInterval: 60 }) })
              .add({ kind: "unsubscribe", clientId: "c", filter: "x" }),
          );
          const s = session((await reload(backend)).sessions, "c");
          assert.equal(s.expiryInterval, 60);
          assert.equal(s.expiresAt, undefined, "an absent deadline is cleared");
          assert.equal(s.username, undefined);
          assert.deepEqual(s.subscriptions, [{ filter: "y", qos: 1 }]);
        }),
    );

    test(
      "a message queued for many sessions is stored once, in order, with its fields",
      opts,
      () =>
        withStore(async ({ sessions }, backend) => {
          const m1 = message("t/1", "one", {
            qos: 2,
            properties: { responseTopic: "r", correlationData: new Uint8Array([1]) },
            expiresAt: Date.now() + 60_000,
            from: "pub",
          });
          const m2 = message("t/2", "two");
          const b = new SessionBatchBuilder();
          for (const c of ["a", "b", "c"]) {
            b.add({ kind: "meta", meta: meta(c) });
            b.message(m1).add({
              kind: "enqueue",
              clientId: c,
              delivery: { messageId: m1.id, qos: 2, retain: false, subscriptionIds: [3, 4] },
            });
          }
          await sessions.write(b);
          await sessions.write(
            new SessionBatchBuilder().message(m2).add({
              kind: "enqueue",
              clientId: "a",
              delivery: { messageId: m2.id, qos: 1, retain: true, share: "g\0t/#" },
            }),
          );
          assert.equal(await backend.storedMessageCount(), 2);
          const state = await reload(backend);
          const a = session(state.sessions, "a");
          assert.deepEqual(a.queue, [
            { messageId: m1.id, qos: 2, retain: false, subscriptionIds: [3, 4] },
            { messageId: m2.id, qos: 1, retain: true, share: "g\0t/#" },
          ]);
          assert.equal(session(state.sessions, "c").queue.length, 1);
          const got = state.messages.get(m1.id)!;
          assert.equal(got.topic, "t/1");
          assert.equal(text(got.payload), "one");
          assert.equal(got.qos, 2);
          assert.equal(got.expiresAt, m1.expiresAt);
          assert.equal(got.from, "pub");
          assert.equal(got.properties?.responseTopic, "r");
          assert.deepEqual([...got.properties!.correlationData!], [1]);
          assert.equal(text(state.messages.get(m2.id)!.payload), "two");
        }),
    );

    test(
      "send, release, complete: QoS 2 state both sides, and the last reference deletes",
      opts,
      () =>
        withStore(async ({ sessions }, backend) => {
          const m = message("q2", "x", { qos: 2 });
          const b = new SessionBatchBuilder();
          for (const c of ["a", "b"]) {
            b.add({ kind: "meta", meta: meta(c) }).message(m).add({
              kind: "enqueue",
              clientId: c,
              delivery: { messageId: m.id, qos: 2, retain: false },
            });
          }
          await sessions.write(b);
          const inflight: StoredInflight = {
            messageId: m.id,
            qos: 2,
            retain: false,
            packetId: 41,
            released: false,
          };
          await sessions.write(
            new SessionBatchBuilder()
              .add({ kind: "send", clientId: "a", inflight, fromQueue: true })
              .add({ kind: "incoming", clientId: "a", packetId: 7, add: true })
              .add({ kind: "incoming", clientId: "a", packetId: 8, add: true }),
          );
          let a = session((await reload(backend)).sessions, "a");
          assert.deepEqual(a.queue, []);
          assert.deepEqual(a.inflight, [inflight]);
          assert.equal(a.lastPacketId, 41);
          assert.deepEqual([...a.incomingQos2].sort(), [7, 8]);

          await sessions.write(
            new SessionBatchBuilder()
              .add({ kind: "release", clientId: "a", packetId: 41 })
              .add({ kind: "incoming", clientId: "a", packetId: 7, add: false }),
          );
          a = session((await reload(backend)).sessions, "a");
          assert.deepEqual(a.inflight, [{ ...inflight, released: true }]);
          assert.deepEqual(a.incomingQos2, [8]);

          await sessions.write(
            new SessionBatchBuilder().add({
              kind: "complete",
              clientId: "a",
              packetId: 41,
              messageId: m.id,
            }),
          );
          const state = await reload(backend);
          assert.deepEqual(session(state.sessions, "a").inflight, []);
          assert.equal(await backend.storedMessageCount(), 1, "b still holds it");
          assert.ok(state.messages.has(m.id));
          await sessions.write(
            new SessionBatchBuilder().add({ kind: "drop", clientId: "b", messageId: m.id }),
          );
          assert.equal(await backend.storedMessageCount(), 0, "deleted with its last reference");
          assert.deepEqual(session((await reload(backend)).sessions, "b").queue, []);
        }),
    );

    test(
      "a new in-flight entry takes a reference; a reused packet id clears released",
      opts,
      () =>
        withStore(async ({ sessions }, backend) => {
          const m1 = message("x", "1", { qos: 2 });
          const m2 = message("x", "2", { qos: 2 });
          const send = (m: StoredMessage, released: boolean) => ({
            kind: "send" as const,
            clientId: "a",
            fromQueue: false,
            inflight: { messageId: m.id, qos: 2 as const, retain: false, packetId: 1, released },
          });
          await sessions.write(
            new SessionBatchBuilder().add({ kind: "meta", meta: meta("a") }).message(m1).add(
              send(m1, false),
            ).add({ kind: "release", clientId: "a", packetId: 1 }),
          );
          await sessions.write(
            new SessionBatchBuilder()
              .add({ kind: "complete", clientId: "a", packetId: 1, messageId: m1.id })
              .message(m2).add(send(m2, false)),
          );
          const a = session((await reload(backend)).sessions, "a");
          assert.deepEqual(a.inflight.map((f) => [f.messageId, f.released]), [[m2.id, false]]);
          assert.equal(await backend.storedMessageCount(), 1);
        }),
    );

    test(
      "a message carried but referenced by nobody, or completed in the same batch, is not kept",
      opts,
      () =>
        withStore(async ({ sessions }, backend) => {
          const m = message("x", "y");
          // Written as is: SessionBatchBuilder would take the send and complete out itself.
          const changes: SessionChange[] = [
            { kind: "meta", meta: meta("a") },
            {
              kind: "send",
              clientId: "a",
              fromQueue: false,
              inflight: { messageId: m.id, qos: 1, retain: false, packetId: 5, released: false },
            },
            { kind: "complete", clientId: "a", packetId: 5, messageId: m.id },
          ];
          await sessions.write({
            messages: [m, message("unused", "z")],
            changes: new Map([["a", changes]]),
          });
          assert.equal(await backend.storedMessageCount(), 0);
          assert.deepEqual(session((await reload(backend)).sessions, "a").inflight, []);
        }),
    );

    test(
      "deleting a session drops its references and every one of its entries",
      opts,
      () =>
        withStore(async ({ sessions }, backend) => {
          const shared = message("s", "shared");
          const own = message("o", "own");
          const b = new SessionBatchBuilder();
          for (const c of ["a", "b"]) {
            b.add({ kind: "meta", meta: meta(c) })
              .add({ kind: "subscribe", clientId: c, sub: { filter: "#", qos: 1 } })
              .message(shared)
              .add({
                kind: "enqueue",
                clientId: c,
                delivery: { messageId: shared.id, qos: 1, retain: false },
              });
          }
          b.message(own).add({
            kind: "send",
            clientId: "a",
            fromQueue: false,
            inflight: { messageId: own.id, qos: 1, retain: false, packetId: 3, released: false },
          }).add({ kind: "incoming", clientId: "a", packetId: 9, add: true });
          await sessions.write(b);
          assert.equal(await backend.storedMessageCount(), 2);
          await sessions.write(
            new SessionBatchBuilder().add({ kind: "delete", clientId: "a" }),
          );
          let state = await reload(backend);
          assert.deepEqual(state.sessions.map((s) => s.clientId), ["b"]);
          assert.equal(await backend.storedMessageCount(), 1);
          // A session of the same id starts empty.
          await sessions.write(new SessionBatchBuilder().add({ kind: "meta", meta: meta("a") }));
          state = await reload(backend);
          const a = session(state.sessions, "a");
          assert.deepEqual(
            [a.subscriptions, a.queue, a.inflight, a.incomingQos2, a.lastPacketId],
            [[], [], [], [], 0],
          );
          await sessions.write(
            new SessionBatchBuilder()
              .add({ kind: "delete", clientId: "b" })
              .add({ kind: "delete", clientId: "a" })
              .add({ kind: "delete", clientId: "never-existed" }),
          );
          assert.equal((await reload(backend)).sessions.length, 0);
          assert.equal(await backend.storedMessageCount(), 0);
        }),
    );

    test(
      "an acknowledgement or drop seen twice never takes another session's reference",
      opts,
      () =>
        withStore(async ({ sessions }, backend) => {
          const m = message("t", "x");
          const b = new SessionBatchBuilder();
          for (const c of ["a", "b"]) {
            b.add({ kind: "meta", meta: meta(c) }).message(m).add({
              kind: "enqueue",
              clientId: c,
              delivery: { messageId: m.id, qos: 1, retain: false },
            });
          }
          b.add({
            kind: "send",
            clientId: "a",
            fromQueue: true,
            inflight: { messageId: m.id, qos: 1, retain: false, packetId: 1, released: false },
          });
          await sessions.write(b);
          const complete = {
            kind: "complete",
            clientId: "a",
            packetId: 1,
            messageId: m.id,
          } as const;
          await sessions.write(new SessionBatchBuilder().add(complete).add(complete));
          await sessions.write(new SessionBatchBuilder().add(complete));
          await sessions.write(
            new SessionBatchBuilder().add({ kind: "drop", clientId: "a", messageId: m.id }),
          );
          assert.equal(await backend.storedMessageCount(), 1, "b still holds it");
          const state = await reload(backend);
          assert.equal(session(state.sessions, "b").queue.length, 1);
          assert.equal(text(state.messages.get(m.id)!.payload), "x");
        }),
    );

    runRetainedContract(opts, withStore);
  });
}
