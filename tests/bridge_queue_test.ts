// The bridge's outbound queue, in memory and in SQLite, against the BridgeQueue contract.
import { after, test } from "node:test";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { SqliteDb } from "../src/store/sqlite_db.ts";
import { SqliteBridgeQueue } from "../src/bridge/mqtt_queue_sqlite.ts";
import assert from "node:assert/strict";
import { MemoryBridgeQueue } from "../src/bridge/mqtt_queue.ts";
import { bridgeQueueContract } from "./helpers/bridge_queue_contract.ts";

bridgeQueueContract("memory", { make: (max) => new MemoryBridgeQueue(max) });

test("memory: a long run of pushes and out-of-order removals stays consistent", () => {
  const q = new MemoryBridgeQueue(5000);
  const live: number[] = [];
  for (let round = 0; round < 20; round++) {
    for (let i = 0; i < 300; i++) {
      q.push({ topic: "t", payload: new Uint8Array(1), qos: 1, retain: false });
    }
    const seqs = q.peek(0, 10_000).map((m) => m.seq);
    // Remove every other one, newest first, then the rest from the front.
    for (let i = seqs.length - 1; i >= 0; i -= 2) q.remove(seqs[i]);
    const left = q.peek(0, 10_000).map((m) => m.seq);
    for (const s of left.slice(0, 100)) q.remove(s);
    live.length = 0;
    live.push(...q.peek(0, 10_000).map((m) => m.seq));
    assert.equal(q.size(), live.length);
    for (let i = 1; i < live.length; i++) assert.ok(live[i] > live[i - 1]);
  }
});

// The same contract on the SQLite store's file, and across a close and reopen.
const files: { db: SqliteDb; dir: string }[] = [];
bridgeQueueContract("sqlite", {
  make(max) {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "mqttx-bq-"));
    const db = new SqliteDb({ path: path.join(dir, "q.db") });
    files.push({ db, dir });
    return new SqliteBridgeQueue(db, "b", max);
  },
  reopen(q, max) {
    const f = files.find((f) => (q as unknown as { file: SqliteDb }).file === f.db)!;
    f.db.close();
    f.db = new SqliteDb({ path: f.db.options.path });
    return Promise.resolve(new SqliteBridgeQueue(f.db, "b", max));
  },
});
after(() => {
  for (const f of files) {
    f.db.close();
    fs.rmSync(f.dir, { recursive: true, force: true });
  }
});
