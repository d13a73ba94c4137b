/**
 * A SQLite file the broker cannot read its sessions from (another program's database, a
 * damaged one) stops the start with an error that names store.path and the file, as one it
 * cannot open does (README: `mqttx: cannot start: <key>: <why>`).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { DatabaseSync } from "node:sqlite";
import { startTestApp } from "./helpers/certs.ts";

test("another program's SQLite file at store.path: the error names the key and the file", async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "mqttx-foreign-"));
  const file = path.join(dir, "other.db");
  try {
    const db = new DatabaseSync(file);
    db.exec("CREATE TABLE sessions (id TEXT, name TEXT); INSERT INTO sessions VALUES ('a', 'b')");
    db.close();
    await assert.rejects(
      startTestApp({ store: { type: "sqlite", path: file, synchronous: "full" } }),
      (e: Error) => e.message.startsWith("store.path: ") && e.message.includes(file),
    );
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
