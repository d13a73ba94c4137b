/**
 * What a persistent store holds survives an upgrade: a SQLite file and a Redis
 * database written by the current format (rows and hash fields spelled out
 * here literally, as the stores wrote them on 2026-12-02) load with every
 * field. Change a codec and this fails unless the old records still read.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { DatabaseSync } from "node:sqlite";
import { openSqliteStore } from "../src/store/sqlite.ts";
import type { StoredMessage, StoredSession } from "../src/store/types.ts";
import { openRedisStore, redisServerForFile } from "./helpers/redis_server.ts";

/** The will's message fields (t, q, r, P with a binary value as {"$b": base64}, x, f). */
const WILL_FIELDS = '{"t":"will/c1","q":1,"r":1,"P":{"contentType":"text/plain",' +
  '"correlationData":{"$b":"CQg="},"userProperties":[["k","v"]]},"x":1790000000000,"f":"c1"}';
const SUB = '{"filter":"a/+","qos":2,"noLocal":true,"subscriptionId":7}';
const QUEUED = '{"q":2,"s":[7]}';
const MESSAGE_FIELDS = '{"t":"a/b","q":2,"f":"p"}';
const RETAINED_FIELDS = '{"t":"r/t","q":1,"r":1,"x":4102444800000}';

const expectedSession: StoredSession = {
  clientId: "c1",
  username: "alice",
  protocolVersion: 5,
  expiryInterval: 3600,
  expiresAt: 1790000123456,
  willAt: 1790000030000,
  will: {
    topic: "will/c1",
    payload: new Uint8Array([1, 2, 255]),
    qos: 1,
    retain: true,
    properties: {
      contentType: "text/plain",
      correlationData: new Uint8Array([9, 8]),
      userProperties: [["k", "v"]],
    },
    expiresAt: 1790000000000,
    from: "c1",
    delayInterval: 30,
  },
  subscriptions: [{ filter: "a/+", qos: 2, noLocal: true, subscriptionId: 7 }],
  queue: [{ messageId: "m0001", qos: 2, retain: false, subscriptionIds: [7] }],
  inflight: [{ messageId: "m0002", qos: 1, retain: false, packetId: 12, released: false }],
  incomingQos2: [],
  lastPacketId: 12,
};
const expectedMessages: StoredMessage[] = [
  { id: "m0001", topic: "a/b", payload: new Uint8Array([65]), qos: 2, retain: false, from: "p" },
  { id: "m0002", topic: "a/b", payload: new Uint8Array([65]), qos: 2, retain: false, from: "p" },
];
const expectedRetained = {
  topic: "r/t",
  payload: new Uint8Array([82]),
  qos: 1,
  retain: true,
  expiresAt: 4102444800000,
};

/** Uint8Array and Buffer compare by bytes (a store may hand back either). */
function plain(v: unknown): unknown {
  return JSON.parse(JSON.stringify(v, (_k, x) => x instanceof Uint8Array ? [...x] : x));
}

const redis = redisServerForFile();

describe("stored format of the current version", () => {
  test("a SQLite file loads: session meta with will, subscription, queue, in flight, retained", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "mqttx-format-"));
    const file = path.join(dir, "mqttx.db");
    try {
      const db = new DatabaseSync(file);
      db.exec(`
CREATE TABLE sessions (client_id TEXT PRIMARY KEY, meta TEXT NOT NULL, will_payload BLOB,
  last_packet_id INTEGER NOT NULL DEFAULT 0) WITHOUT ROWID;
CREATE TABLE subscriptions (client_id TEXT NOT NULL, filter TEXT NOT NULL, data TEXT NOT NULL,
  PRIMARY KEY (client_id, filter)) WITHOUT ROWID;
CREATE TABLE queue (client_id TEXT NOT NULL, message_id TEXT NOT NULL, data TEXT NOT NULL,
  PRIMARY KEY (client_id, message_id)) WITHOUT ROWID;
CREATE TABLE inflight (client_id TEXT NOT NULL, packet_id INTEGER NOT NULL,
  message_id TEXT NOT NULL, data TEXT NOT NULL, released INTEGER NOT NULL,
  PRIMARY KEY (client_id, packet_id)) WITHOUT ROWID;
CREATE TABLE incoming (client_id TEXT NOT NULL, packet_id INTEGER NOT NULL,
  PRIMARY KEY (client_id, packet_id)) WITHOUT ROWID;
CREATE TABLE messages (id TEXT PRIMARY KEY, refs INTEGER NOT NULL, fields TEXT NOT NULL,
  payload BLOB NOT NULL);
CREATE TABLE retained (topic TEXT PRIMARY KEY, fields TEXT NOT NULL, payload BLOB NOT NULL,
  expires_at INTEGER);`);
      const meta = JSON.stringify({
        c: "c1",
        v: 5,
        e: 3600,
        u: "alice",
        x: 1790000123456,
        wa: 1790000030000,
        w: WILL_FIELDS,
        wd: 30,
      });
      db.prepare("INSERT INTO sessions VALUES (?, ?, ?, ?)")
        .run("c1", meta, new Uint8Array([1, 2, 255]), 12);
      db.prepare("INSERT INTO subscriptions VALUES (?, ?, ?)").run("c1", "a/+", SUB);
      db.prepare("INSERT INTO queue VALUES (?, ?, ?)").run("c1", "m0001", QUEUED);
      db.prepare("INSERT INTO inflight VALUES (?, ?, ?, ?, ?)")
        .run("c1", 12, "m0002", '{"q":1}', 0);
      for (const id of ["m0001", "m0002"]) {
        db.prepare("INSERT INTO messages VALUES (?, 1, ?, ?)")
          .run(id, MESSAGE_FIELDS, new Uint8Array([65]));
      }
      db.prepare("INSERT INTO retained VALUES (?, ?, ?, ?)")
        .run("r/t", RETAINED_FIELDS, new Uint8Array([82]), 4102444800000);
      db.close();

      const store = openSqliteStore({ path: file });
      try {
        const state = await store.sessions.load();
        assert.deepEqual(plain(state.sessions), plain([expectedSession]));
        assert.deepEqual(plain([...state.messages.values()]), plain(expectedMessages));
        assert.deepEqual(plain(store.matchRetained("r/#")), plain([expectedRetained]));
      } finally {
        await store.close();
      }
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test("a Redis database loads: the same session in hashes under the default prefixes", {
    skip: redis.skip,
    timeout: 30_000,
  }, async () => {
    const admin = await openRedisStore(redis.server().url);
    const cmd = (...args: (string | Buffer)[]) => admin.client.sendCommand(args);
    try {
      await cmd("FLUSHDB");
      await cmd(
        "HSET",
        "mqttx:session:key:{c1}",
        ...["c", "c1", "v", "5", "e", "3600", "u", "alice", "x", "1790000123456"],
        ...["wa", "1790000030000", "w", JSON.stringify({ m: WILL_FIELDS, d: 30 })],
        "wp",
        Buffer.from([1, 2, 255]),
      );
      await cmd("HSET", "mqttx:client:topicset:{c1}", "a/+", SUB);
      await cmd("HSET", "mqttx:client:pubmsg:q:{c1}", "m0001", QUEUED);
      await cmd("HSET", "mqttx:client:pubmsg:{c1}", "12", '{"q":1,"m":"m0002"}');
      await cmd("SET", "mqttx:messageId:{c1}", "12");
      for (const id of ["m0001", "m0002"]) {
        await cmd("HSET", `mqttx:msg:payload:${id}`, "m", MESSAGE_FIELDS, "p", "A", "n", "1");
      }
      await cmd("HSET", "mqttx:retain:r/t", "m", RETAINED_FIELDS, "p", "R");
    } finally {
      await admin.close();
    }

    const store = await openRedisStore(redis.server().url);
    try {
      const state = await store.sessions.load();
      assert.deepEqual(plain(state.sessions), plain([expectedSession]));
      const messages = [...state.messages.values()].sort((a, b) => a.id < b.id ? -1 : 1);
      assert.deepEqual(plain(messages), plain(expectedMessages));
      assert.deepEqual(plain(store.matchRetained("r/#")), plain([expectedRetained]));
      // A retained message written before versions (no `v`) counts as older than any change.
      await store.setRetained("r/t", {
        ...expectedRetained,
        qos: 1,
        payload: new Uint8Array([83]),
      });
      const v = await store.client.sendCommand(["HGET", "mqttx:retain:r/t", "v"]);
      assert.equal(String(v), "1");
      assert.deepEqual([...store.matchRetained("r/t")[0].payload], [83]);
    } finally {
      await store.close();
    }
  });
});
