/**
 * The store contract (src/store/contract.ts) against the SQLite store on a temp
 * file, plus what only SQLite has: WAL mode and the synchronous level, one
 * transaction per tick, the file bounded under churn.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { DatabaseSync } from "node:sqlite";
import { runStoreContract } from "../src/store/contract.ts";
import { SessionBatchBuilder } from "../src/store/batch.ts";
import { openSqliteStore } from "../src/store/sqlite.ts";

function tempDb(): { file: string; dispose(): void } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "mqttx-sqlite-"));
  return {
    file: path.join(dir, "mqttx.db"),
    dispose: () => fs.rmSync(dir, { recursive: true, force: true }),
  };
}

function count(file: string, sql: string): number {
  const db = new DatabaseSync(file);
  try {
    return Number((db.prepare(sql).get() as { n: number }).n);
  } finally {
    db.close();
  }
}

runStoreContract("sqlite", {
  backend: () => {
    const t = tempDb();
    const opened: { close(): Promise<void> }[] = [];
    return Promise.resolve({
      open: () => {
        const s = openSqliteStore({ path: t.file });
        opened.push(s);
        return Promise.resolve({ sessions: s.sessions, retained: s });
      },
      storedMessageCount: () =>
        Promise.resolve(count(t.file, "SELECT count(*) AS n FROM messages")),
      durableRetained: true,
      dispose: async () => {
        for (const s of opened) await s.close();
        t.dispose();
      },
    });
  },
});

describe("sqlite store", () => {
  test("WAL mode, synchronous FULL by default and NORMAL on request", async () => {
    const t = tempDb();
    try {
      for (const [sync, want] of [[undefined, 2], ["normal", 1]] as const) {
        const s = openSqliteStore({ path: t.file, synchronous: sync });
        const db = s.sessions["file" as never] as unknown as { db: DatabaseSync };
        assert.equal(
          (db.db.prepare("PRAGMA journal_mode").get() as { journal_mode: string }).journal_mode,
          "wal",
        );
        assert.equal(
          (db.db.prepare("PRAGMA synchronous").get() as { synchronous: number }).synchronous,
          want,
        );
        await s.close();
      }
    } finally {
      t.dispose();
    }
  });

  test("the writes of one tick are one transaction, committed before any promise resolves", async () => {
    const t = tempDb();
    const s = openSqliteStore({ path: t.file });
    try {
      const writes = [];
      for (let i = 0; i < 50; i++) {
        writes.push(s.sessions.write(
          new SessionBatchBuilder().add({
            kind: "meta",
            meta: { clientId: `c${i}`, protocolVersion: 4, expiryInterval: 60 },
          }),
        ));
      }
      writes.push(
        s.setRetained("r", { topic: "r", payload: new Uint8Array([1]), qos: 0, retain: true }),
      );
      // Nothing is in the file until the tick ends ...
      assert.equal(count(t.file, "SELECT count(*) AS n FROM sessions"), 0);
      await writes[0];
      // ... and all of it once the first promise resolved: one COMMIT.
      assert.equal(count(t.file, "SELECT count(*) AS n FROM sessions"), 50);
      assert.equal(count(t.file, "SELECT count(*) AS n FROM retained"), 1);
      await Promise.all(writes);
    } finally {
      await s.close();
      t.dispose();
    }
  });

  test("the file stays bounded under churn: sessions created, filled and deleted", {
    timeout: 120_000,
  }, async () => {
    const t = tempDb();
    const s = openSqliteStore({ path: t.file });
    const size = () =>
      fs.statSync(t.file).size +
      (fs.existsSync(t.file + "-wal") ? fs.statSync(t.file + "-wal").size : 0);
    try {
      const payload = new Uint8Array(200);
      const round = async (r: number) => {
        for (let c = 0; c < 1000; c++) {
          const clientId = `r${r}-c${c}`;
          const b = new SessionBatchBuilder()
            .add({ kind: "meta", meta: { clientId, protocolVersion: 5, expiryInterval: 60 } })
            .add({ kind: "subscribe", clientId, sub: { filter: "t/#", qos: 1 } });
          for (let i = 0; i < 10; i++) {
            const id = `${r}-${c}-${i}`.padStart(20, "0");
            b.message({ id, topic: "t/x", payload, qos: 1, retain: false });
            b.add({
              kind: "enqueue",
              clientId,
              delivery: { messageId: id, qos: 1, retain: false },
            });
          }
          void s.sessions.write(b);
        }
        await s.sessions.write(new SessionBatchBuilder());
        const del = new SessionBatchBuilder();
        for (let c = 0; c < 1000; c++) del.add({ kind: "delete", clientId: `r${r}-c${c}` });
        await s.sessions.write(del);
        s.sweepNow();
        await s.sessions.write(new SessionBatchBuilder());
      };
      await round(0);
      const after1 = size();
      for (let r = 1; r < 6; r++) await round(r);
      const after6 = size();
      assert.equal(count(t.file, "SELECT count(*) AS n FROM messages"), 0);
      assert.equal(count(t.file, "SELECT count(*) AS n FROM sessions"), 0);
      // Six rounds of 10,000 messages each: the file does not grow with the rounds.
      assert.ok(
        after6 <= after1 * 1.5 + 1_000_000,
        `after 1 round ${after1} B, after 6 ${after6} B`,
      );
    } finally {
      await s.close();
      t.dispose();
    }
  });
});
