/**
 * An acknowledgement asked for while the batch being written has just been stored, but before
 * the journal has let go of it (src/broker/journal.ts flush: `this.writing` was cleared one
 * microtask after `open.stored()` ran the batch's acknowledgements), must still be sent. It was
 * queued on the settled batch, whose acknowledgements had already been taken, and never sent:
 * a retained QoS 1 PUBLISH on the Redis store whose retained write was answered in the same
 * read as a session batch lost its PUBACK (tests/durable_kill_test.ts, seen under load).
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { SessionJournal } from "../src/broker/journal.ts";
import type { Connection } from "../src/broker/connection.ts";
import type { Session } from "../src/broker/session.ts";
import type { SessionBatch, SessionStore, StoredState } from "../src/store/types.ts";

/** A store whose writes settle when the test says so. */
class GatedStore implements SessionStore {
  writes: {
    batch: SessionBatch;
    promise: Promise<void>;
    resolve: () => void;
    reject: (e: Error) => void;
  }[] = [];
  load(): Promise<StoredState> {
    throw new Error("not used");
  }
  write(batch: SessionBatch): Promise<void> {
    let resolve!: () => void, reject!: (e: Error) => void;
    const promise = new Promise<void>((res, rej) => ((resolve = res), (reject = rej)));
    this.writes.push({ batch, promise, resolve, reject });
    return promise;
  }
  close(): Promise<void> {
    return Promise.resolve();
  }
}

const turn = () => new Promise((r) => setTimeout(r, 0));

async function untilWritten(store: GatedStore, n: number): Promise<void> {
  for (let i = 0; i < 100 && store.writes.length < n; i++) await turn();
  assert.equal(store.writes.length, n, "the batch was handed to the store");
}

describe("session journal: an acknowledgement asked for as a batch settles", () => {
  for (const outcome of ["stored", "failed"] as const) {
    test(`is sent (or refused) when the write it would wait for was just ${outcome}`, async () => {
      const store = new GatedStore();
      const journal = new SessionJournal(store, () => undefined, () => {});
      // A persistent session: its CONNECT opens a batch (a clean start and its meta).
      const session = { clientId: "s", expiryInterval: 3600 } as unknown as Session;
      journal.opened(session, undefined, 4);
      await untilWritten(store, 1);
      // Another client (clean: not in the journal) whose PUBACK is asked for right after the
      // store answered, as a retained write answered in the same read from Redis does.
      let sent = 0, closed = 0;
      const conn = {
        session: undefined,
        closing: false,
        describe: () => "publisher",
        close: () => void closed++,
      } as unknown as Connection;
      const w = store.writes[0];
      w.promise.then(
        () => void journal.acknowledge(conn, () => void sent++),
        () => void journal.acknowledge(conn, () => void sent++),
      );
      if (outcome === "stored") w.resolve();
      else w.reject(new Error("down"));
      for (let i = 0; i < 5; i++) await turn();
      // Nothing waits to be written any more: the acknowledgement goes at once. (After a
      // failure too: the publisher's own session is not behind.)
      assert.equal(sent + closed, 1, "the acknowledgement was neither sent nor refused");
      assert.equal(sent, 1);
      journal.close();
    });
  }
});
