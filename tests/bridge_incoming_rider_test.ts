/**
 * A bridge's kept QoS 2 record (between PUBREC and PUBREL) is deleted in the same store write
 * as the session batch its local publish became (`BatchRider`): both or neither, so a crash
 * neither loses the message nor lets the upstream's next PUBREL publish it again. Per store:
 * SQLite (one transaction), Redis (one script; not on a fenced cluster node, where the fence
 * may refuse the changes), memory (nothing outlives the process: no rider).
 */
import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { Broker } from "../src/broker/broker.ts";
import type { BrokerHooks } from "../src/broker/hooks.ts";
import { LocalClient } from "../src/broker/local_client.ts";
import { SessionBatchBuilder } from "../src/store/batch.ts";
import { openSqliteStore } from "../src/store/sqlite.ts";
import type { BatchRider, SessionStore, Store } from "../src/store/types.ts";
import { MemoryBridgeQueue } from "../src/bridge/mqtt_queue.ts";
import { SqliteBridgeQueue } from "../src/bridge/mqtt_queue_sqlite.ts";
import { RedisBridgeQueue } from "../src/bridge/mqtt_queue_redis.ts";
import type { BridgeQueue, IncomingRecord } from "../src/bridge/mqtt_queue.ts";
import { openRedisStore, redisServerForFile } from "./helpers/redis_server.ts";
import { PacketClient, testBrokerOptions } from "./helpers/packet_client.ts";

const kept = (messageId: number): IncomingRecord => ({
  messageId,
  topic: "in/t",
  payload: new TextEncoder().encode(`m${messageId}`),
  qos: 2,
  retain: false,
});

/** A batch queueing one message for the offline session `clientId`, with `riders`. */
function delivery(clientId: string, riders: BatchRider[]): SessionBatchBuilder {
  const b = new SessionBatchBuilder();
  b.message({ id: "m1", topic: "t", payload: new Uint8Array(3), qos: 2, retain: false });
  b.add({ kind: "meta", meta: { clientId, protocolVersion: 5, expiryInterval: 600 } });
  b.add({ kind: "enqueue", clientId, delivery: { messageId: "m1", qos: 2, retain: false } });
  b.riders.push(...riders);
  return b;
}

async function queued(store: SessionStore, clientId: string): Promise<number> {
  const s = (await store.load()).sessions.find((x) => x.clientId === clientId);
  return s?.queue.length ?? 0;
}

async function keptIds(q: BridgeQueue): Promise<number[]> {
  return (await q.incoming()).map((r) => r.messageId).sort((a, b) => a - b);
}

const retained = (topic: string) => ({
  topic,
  payload: new TextEncoder().encode("r"),
  qos: 2 as const,
  retain: true,
});

/** Record 3 deleted with a retained write: written together, and said so. */
async function storedWithRetained(queue: BridgeQueue, store: Store): Promise<void> {
  await queue.putIncoming(kept(3));
  const rider = queue.incomingDeletion(3)!;
  await store.setRetained("ret/1", retained("ret/1"), rider);
  assert.equal(rider.applied, true);
  assert.ok(!(await keptIds(queue)).includes(3));
}

test("memory: no rider (its kept records do not outlive the process)", () => {
  assert.equal(new MemoryBridgeQueue(10).incomingDeletion(1), undefined);
});

/** Records 1 and 2 kept; 1 deleted with a delivery to "a": written together, and said so. */
async function storedWithDelivery(queue: BridgeQueue, sessions: SessionStore): Promise<void> {
  await queue.putIncoming(kept(1));
  await queue.putIncoming(kept(2));
  const rider = queue.incomingDeletion(1)!;
  await sessions.write(delivery("a", [rider]));
  assert.equal(rider.applied, true);
  assert.deepEqual(await keptIds(queue), [2]);
  assert.equal(await queued(sessions, "a"), 1);
}

describe("sqlite: the kept record goes in the batch's transaction", () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "mqttx-rider-"));
  const store = openSqliteStore({ path: path.join(dir, "mqttx.db") });
  const queue = new SqliteBridgeQueue(store.file, "b", 10);
  after(async () => {
    await store.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test("stored with the delivery, and said so", () => storedWithDelivery(queue, store.sessions));

  test("a batch that fails keeps the record (and the session unchanged)", async () => {
    const rider = queue.incomingDeletion(2);
    const failing: BatchRider = {
      sqlite: () => {
        throw new Error("disk full");
      },
    };
    await assert.rejects(store.sessions.write(delivery("b", [rider, failing])), /disk full/);
    assert.equal(rider.applied, undefined);
    assert.deepEqual(await keptIds(queue), [2]);
    assert.equal(await queued(store.sessions, "b"), 0);
  });

  test("or in a retained write's, both or neither", async () => {
    await storedWithRetained(queue, store);
    const failing: BatchRider = {
      sqlite: () => {
        throw new Error("disk full");
      },
    };
    await assert.rejects(Promise.resolve(store.setRetained("ret/2", retained("ret/2"), failing)));
    const rows = store.file.prepare("SELECT count(*) AS n FROM retained WHERE topic = ?");
    assert.equal(Number(rows.get("ret/2")!.n), 0, "the retained write went with it");
    assert.equal(failing.applied, undefined);
  });
});

describe("redis: the kept record goes in the batch's script", () => {
  const { skip, server } = redisServerForFile();

  test("stored with the delivery, and said so", { skip, timeout: 30_000 }, async () => {
    const store = await openRedisStore(server().url);
    try {
      await storedWithDelivery(await RedisBridgeQueue.open(store.client, "r1", 10), store.sessions);
    } finally {
      await store.close();
    }
  });

  test("or in a retained write's script", { skip, timeout: 30_000 }, async () => {
    const store = await openRedisStore(server().url);
    try {
      await storedWithRetained(await RedisBridgeQueue.open(store.client, "r3", 10), store);
      const h = await store.client.sendCommand(["HGET", store.keys.retained("ret/1"), "m"]);
      assert.ok(h, "the retained message is stored too");
    } finally {
      await store.close();
    }
  });

  test("a fenced node leaves it to the bridge", { skip, timeout: 30_000 }, async () => {
    const store = await openRedisStore(server().url);
    try {
      store.sessions.fence = { writers: "test:writers", want: () => " self" };
      const queue = await RedisBridgeQueue.open(store.client, "r2", 10);
      await queue.putIncoming(kept(7));
      const rider = queue.incomingDeletion(7);
      await store.sessions.write(delivery("c", [rider]));
      assert.equal(rider.applied, undefined, "not applied: the bridge deletes it itself");
      assert.deepEqual(await keptIds(queue), [7]);
      assert.equal(await queued(store.sessions, "c"), 1);
    } finally {
      await store.close();
    }
  });
});

/**
 * A hook that keeps the message too (persistPublish: another bridge's durable queue, an
 * embedder's store) holds the publish until it has it: the kept record may go no earlier,
 * or a crash after the session batch but before the hook kept the message loses it there.
 */
describe("a message a hook still holds keeps its record past the session batch", () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "mqttx-rider-held-"));
  const store = openSqliteStore({ path: path.join(dir, "mqttx.db") });
  const queue = new SqliteBridgeQueue(store.file, "h", 10);
  const waiting: { resolve: () => void; reject: (e: Error) => void }[] = [];
  const hooks: BrokerHooks = {
    persistPublish: () => new Promise<void>((resolve, reject) => waiting.push({ resolve, reject })),
  };
  const broker = new Broker(testBrokerOptions({ hooks: [hooks] }), store);
  after(async () => {
    await broker.close(); // closes the store
    fs.rmSync(dir, { recursive: true, force: true });
  });

  // Retained: stored first, routed once that write returned, while the hook still holds it.
  for (const [id, retain] of [[5, false], [6, true]] as const) {
    test(`kept while the hook holds it, and when the hook refuses it (retain ${retain})`, async () => {
      const clientId = `off${id}`;
      const { client } = await PacketClient.connect(broker, { clientId, clean: false });
      client.send({ type: 8, packetId: 1, subscriptions: [{ topicFilter: "in/#", qos: 2 }] });
      await client.expect(9);
      client.drop();
      await client.expectClosed();
      waiting.splice(0).forEach((w) => w.resolve());
      await broker.journal!.settled();

      await queue.putIncoming({ ...kept(id), retain });
      const rider = queue.incomingDeletion(id);
      const local = new LocalClient(broker, "$bridge");
      const published = local.publish("in/t", "x", { qos: 2, retain, rider });
      while ((await queued(store.sessions, clientId)) === 0) await broker.journal!.settled();
      assert.equal(waiting.length, 1, "the hook still holds it");
      assert.deepEqual(await keptIds(queue), [id], "a crash now must not lose it for the hook");
      waiting.splice(0).forEach((w) => w.reject(new Error("hook store down")));
      await assert.rejects(Promise.resolve(published), /hook store down/);
      assert.deepEqual(
        await keptIds(queue),
        [id],
        "refused: the upstream's PUBREL publishes it again",
      );
      assert.notEqual(rider.applied, true);
      await queue.delIncoming(id);
    });
  }
});

/**
 * A retained message is stored first and routed once that write returns: its record rides
 * the batch that then holds ITS deliveries, never a batch another publisher opened while the
 * retained write was on its way (written before those deliveries, a crash in between would
 * lose the message), nor the retained write (the same). With no persistent session to get it,
 * it rides the retained write: its only store write then.
 */
async function retainedRides(store: Store & { sessions: SessionStore }, queue: BridgeQueue) {
  const broker = new Broker(testBrokerOptions(), store);
  try {
    const { client } = await PacketClient.connect(broker, { clientId: "off-r", clean: false });
    client.send({ type: 8, packetId: 1, subscriptions: [{ topicFilter: "in/#", qos: 2 }] });
    await client.expect(9);
    client.drop();
    await client.expectClosed();
    await broker.journal!.settled();
    const batches: { riders: BatchRider[]; payloads: string[] }[] = [];
    const write = store.sessions.write.bind(store.sessions);
    store.sessions.write = (batch) => {
      const payloads = batch.messages.map((m) => new TextDecoder().decode(m.payload));
      batches.push({ riders: [...batch.riders ?? []], payloads });
      return write(batch);
    };

    await queue.putIncoming({ ...kept(9), topic: "in/r", retain: true });
    const rider = queue.incomingDeletion(9)!;
    const local = new LocalClient(broker, "$bridge");
    // Another publisher's batch: open when the retained message comes, written while the
    // retained write is on its way.
    const other = local.publish("in/other", "other", { qos: 2 });
    const published = local.publish("in/r", "retained", { qos: 2, retain: true, rider });
    await Promise.all([published, other]);
    assert.equal(rider.applied, true, "applied with the batch of its deliveries");
    const carried = batches.filter((b) => b.riders.includes(rider));
    assert.deepEqual(carried.map((b) => b.payloads.includes("retained")), [true]);
    assert.deepEqual(await keptIds(queue), []);
    assert.equal(await queued(store.sessions, "off-r"), 2);
    assert.equal(store.matchRetained("in/r").length, 1);

    // No persistent session gets it: no batch, the retained write is its only store write.
    await queue.putIncoming({ ...kept(11), topic: "solo/r", retain: true });
    const alone = queue.incomingDeletion(11)!;
    await local.publish("solo/r", "alone", { qos: 2, retain: true, rider: alone });
    assert.equal(alone.applied, true, "applied with the retained write");
    assert.deepEqual(batches.filter((b) => b.riders.includes(alone)), []);
    assert.deepEqual(await keptIds(queue), []);
  } finally {
    await broker.close(); // closes the store
  }
}

describe("a retained message's record rides the store write of its deliveries", () => {
  const { skip, server } = redisServerForFile();

  test("sqlite", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "mqttx-rider-ret-"));
    try {
      const store = openSqliteStore({ path: path.join(dir, "mqttx.db") });
      await retainedRides(store, new SqliteBridgeQueue(store.file, "r", 10));
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test("redis", { skip, timeout: 30_000 }, async () => {
    const store = await openRedisStore(server().url);
    await retainedRides(store, await RedisBridgeQueue.open(store.client, "ret", 10));
  });
});

/**
 * The batch holding a held message's deliveries may be written, and fail, while the hook still
 * holds it: once the hook lets go, the local publish must not resolve (the bridge would send
 * PUBCOMP and delete its record) for deliveries no store holds (lost with a crash then).
 */
describe("a held message whose deliveries' batch failed meanwhile is not acknowledged", () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "mqttx-rider-fail-"));
  const store = openSqliteStore({ path: path.join(dir, "mqttx.db") });
  const waiting: (() => void)[] = [];
  const hooks: BrokerHooks = {
    persistPublish: () => new Promise<void>((resolve) => waiting.push(resolve)),
  };
  const broker = new Broker(testBrokerOptions({ hooks: [hooks] }), store);
  after(async () => {
    await broker.close(); // closes the store
    fs.rmSync(dir, { recursive: true, force: true });
  });
  // A batch carrying `payload` fails once, in SQLite (its transaction rolled back).
  const failOnce = new Set<string>();
  const write = store.sessions.write.bind(store.sessions);
  store.sessions.write = (batch) => {
    const b = batch as SessionBatchBuilder;
    const hit = b.messages.find((m) => failOnce.delete(new TextDecoder().decode(m.payload)));
    if (hit) b.riders.push({ sqlite: () => void assert.fail("disk full") });
    return write(batch);
  };

  for (const retain of [false, true]) {
    test(`retain ${retain}`, async () => {
      const clientId = `fail-${retain}`;
      const { client } = await PacketClient.connect(broker, { clientId, clean: false });
      client.send({ type: 8, packetId: 1, subscriptions: [{ topicFilter: "f/#", qos: 2 }] });
      await client.expect(9);
      client.drop();
      await client.expectClosed();
      await broker.journal!.settled();

      const payload = `lost-${retain}`;
      failOnce.add(payload);
      const failed = broker.journal!.stats.failedBatches;
      const local = new LocalClient(broker, "$bridge");
      const published = Promise.resolve(local.publish("f/t", payload, { qos: 2, retain }));
      published.catch(() => {});
      while (broker.journal!.stats.failedBatches === failed) {
        await new Promise((r) => setTimeout(r, 1));
      }
      assert.equal(waiting.length, 1, "the hook still holds it");
      waiting.splice(0).forEach((resolve) => resolve());
      await assert.rejects(published, "its deliveries were not stored");
    });
  }
});
