/**
 * Nothing leaks in the SQLite file: 10,000 persistent sessions are created,
 * filled with queued messages (some shared by all, one of each session's own)
 * and left to expire; afterwards every table is empty and, once the store's
 * sweep ran (incremental_vacuum + a WAL checkpoint), the file's page count is
 * back near its baseline, with no free pages kept and the WAL truncated.
 * Drives a broker on the SQLite store in-process over in-memory connections
 * (tests/helpers/churn.ts, the same churn as the Redis test).
 */
import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { Broker } from "../src/broker/broker.ts";
import { restoreSessions } from "../src/broker/restore.ts";
import { openSqliteStore, type SqliteStore } from "../src/store/sqlite.ts";
import { testBrokerOptions } from "./helpers/packet_client.ts";
import { fillExpiringSessions } from "./helpers/churn.ts";

const SESSIONS = 10_000;
/** Seconds: long enough to create and fill every session before the first expires. */
const EXPIRY = 20;
const TABLES = ["sessions", "subscriptions", "queue", "inflight", "incoming", "messages"];
const dir = fs.mkdtempSync(path.join(os.tmpdir(), "mqttx-churn-"));
const file = path.join(dir, "churn.db");
let store: SqliteStore | undefined;
let broker: Broker | undefined;

after(async () => {
  await broker?.close();
  await store?.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

const pragma = (name: string) =>
  Number(Object.values(store!.file.db.prepare(`PRAGMA ${name}`).get()!)[0]);
const rows = () =>
  TABLES.reduce(
    (n, t) => n + Number(store!.file.db.prepare(`SELECT count(*) AS n FROM ${t}`).get()!.n),
    0,
  );
const walBytes = () => fs.existsSync(`${file}-wal`) ? fs.statSync(`${file}-wal`).size : 0;

/** The store's sweep, and then its vacuum after that commit (it returns nothing to wait on). */
async function sweep(): Promise<void> {
  store!.sweepNow();
  await new Promise((r) => setTimeout(r, 100));
  await store!.file.write(() => {}); // a commit after the sweep's: it ran
}

describe("session churn on SQLite", () => {
  test(`${SESSIONS} sessions created, filled and expired: no row left, the file shrinks back`, {
    timeout: 300_000,
  }, async () => {
    store = openSqliteStore({ path: file });
    broker = new Broker(testBrokerOptions({ maxQueuedMessages: 100 }), store);
    restoreSessions(broker, await store.sessions.load());
    await sweep();
    const pagesBefore = pragma("page_count");
    assert.equal(rows(), 0);

    await fillExpiringSessions(broker, SESSIONS, EXPIRY);
    const pagesFull = pragma("page_count");
    const rowsFull = rows();
    assert.equal(broker.sessions.size, SESSIONS + 1, "none expired yet");
    // Per session: meta, 2 subscriptions, 4 queued; plus its own message and the 3 shared ones.
    assert.ok(rowsFull >= SESSIONS * 8 + 3, `rows when full: ${rowsFull}`);

    const deadline = Date.now() + EXPIRY * 1000 + 60_000;
    while (Date.now() < deadline && rows() > 0) await new Promise((r) => setTimeout(r, 250));
    await broker.journal!.settled();
    const freeBeforeSweep = pragma("freelist_count");
    await sweep(); // what the store's periodic sweep does
    const pagesAfter = pragma("page_count");
    const freeAfter = pragma("freelist_count");
    console.log(
      `churn (SQLite): ${SESSIONS} sessions; rows 0 -> ${rowsFull} -> ${rows()}; pages ` +
        `${pagesBefore} -> ${pagesFull} -> ${pagesAfter} (free before the sweep ` +
        `${freeBeforeSweep}, after ${freeAfter}); WAL ${walBytes()} B`,
    );
    assert.equal(rows(), 0, "every session, subscription, queued and stored message deleted");
    assert.equal(broker.sessions.size, 1, "only the (clean) publisher's");
    assert.ok(pagesFull > pagesBefore * 10, `the full state took pages: ${pagesFull}`);
    // Back near the baseline: within 2% of what the full state took (B-tree roots stay).
    const bound = pagesBefore + (pagesFull - pagesBefore) / 50;
    assert.ok(pagesAfter <= bound, `page_count ${pagesAfter} > ${bound}`);
    assert.equal(freeAfter, 0, "free pages given back to the file system");
    assert.equal(fs.statSync(file).size, pagesAfter * pragma("page_size"));
    assert.equal(walBytes(), 0, "WAL truncated at the checkpoint");
  });
});
