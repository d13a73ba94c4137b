/**
 * The session journal's linger on a real redis-server: a delivery to an online
 * persistent subscriber that is acknowledged before its batch is written never
 * reaches Redis (src/broker/journal.ts), even when the acknowledgement takes a
 * few event-loop turns in which nothing else happens (a subscriber still
 * reading a burst). Counting those idle turns against the linger stored every
 * such delivery and deleted it in the next batch (bench/README.md, "bimodal").
 * A steady flow (every turn brings acknowledgements and new sends) is still
 * written after a few turns, not held to the linger's limit. And a delivery
 * that is not acknowledged is stored before the publisher's PUBACK:
 * acknowledged means kept; and at once when someone waits for the journal to
 * settle (closing, a takeover).
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { Broker } from "../src/broker/broker.ts";
import type { LingerDeadlines } from "../src/broker/journal_linger.ts";
import { restoreSessions } from "../src/broker/restore.ts";
import type { RedisStore } from "../src/store/redis.ts";
import { openRedisStore, RedisServer, skipWithoutRedis } from "./helpers/redis_server.ts";
import { PacketClient, publishPacket, testBrokerOptions } from "./helpers/packet_client.ts";

const skip = skipWithoutRedis();
const OPTS = { skip, timeout: 30_000 };
let redis: RedisServer | undefined;
let store: RedisStore | undefined;
let broker: Broker | undefined;

/**
 * A broker on its own redis-server for the tests of one describe. The tests of the
 * linger's turns put its deadlines out of reach: on a busy host a few event-loop
 * turns can take longer than 10 ms, and those tests are about turns, not time
 * (a clean-clone CI run stored whole rounds that were acknowledged three turns on).
 */
function useBroker(journalLinger?: LingerDeadlines): void {
  before(async () => {
    if (skip) return;
    redis = await RedisServer.start();
    store = await openRedisStore(redis.url);
    broker = new Broker(testBrokerOptions({ journalLinger }), store);
    restoreSessions(broker, await store.sessions.load());
  });
  after(async () => {
    await broker?.close();
    await store?.close();
    await redis?.dispose();
  });
}

/** Commands Redis ran (those run by scripts included), INFO itself left out. */
async function redisCommands(): Promise<number> {
  const info = String(await store!.client.sendCommand(["INFO", "commandstats"]));
  let n = 0;
  for (const m of info.matchAll(/^cmdstat_(\w+):calls=(\d+)/gm)) {
    if (m[1] !== "info") n += Number(m[2]);
  }
  return n;
}

/** `n` turns of the event loop in which this test does nothing. */
async function idleTurns(n: number): Promise<void> {
  for (let i = 0; i < n; i++) await new Promise((r) => setTimeout(r, 0));
}

async function persistentSubscriber(clientId: string, filter: string): Promise<PacketClient> {
  const { client } = await PacketClient.connect(broker!, { clientId, clean: false });
  client.send({ type: 8, packetId: 1, subscriptions: [{ topicFilter: filter, qos: 1 }] });
  await client.expect(9);
  await broker!.journal!.settled(); // the session and its subscription are stored
  return client;
}

describe("session journal linger (Redis): turns", () => {
  useBroker({ quietMs: 10_000, maxMs: 20_000 });

  test(
    "deliveries acknowledged after a few idle turns are never stored",
    OPTS,
    async () => {
      const sub = await persistentSubscriber("linger-sub", "linger/#");
      const { client: pub } = await PacketClient.connect(broker!, { clientId: "linger-pub" });
      const ROUNDS = 10, PER_ROUND = 5;
      const before = await redisCommands();
      let packetId = 0;
      for (let round = 0; round < ROUNDS; round++) {
        for (let i = 0; i < PER_ROUND; i++) {
          pub.send(publishPacket("linger/t", `m${round}.${i}`, 1, ++packetId));
        }
        const received = [];
        for (let i = 0; i < PER_ROUND; i++) received.push(await sub.expect(3));
        // The subscriber acknowledges three turns later; nothing else happens meanwhile.
        await idleTurns(3);
        for (const p of received) sub.send({ type: 4, packetId: p.packetId! });
        for (let i = 0; i < PER_ROUND; i++) await pub.expect(4);
      }
      await broker!.journal!.settled();
      const perDelivery = (await redisCommands() - before) / (ROUNDS * PER_ROUND);
      // Stored and deleted, each delivery costs about six commands; left out, none.
      assert.ok(perDelivery < 1, `Redis commands per delivery: ${perDelivery}`);
      sub.send({ type: 14, reasonCode: 0 });
      pub.send({ type: 14, reasonCode: 0 });
    },
  );

  test(
    "a steady flow, each delivery acknowledged a turn later, does not hold PUBACKs back",
    OPTS,
    async () => {
      const sub = await persistentSubscriber("steady-sub", "steady/#");
      const { client: pub } = await PacketClient.connect(broker!, { clientId: "steady-pub" });
      // Every turn: the subscriber acknowledges what it got in the turn before, and one more
      // PUBLISH comes. Each turn brings acknowledgements and a new send.
      let sent = 0, firstAckAt = 0;
      while (firstAckAt === 0 && sent < 200) {
        for (const p of sub.pending().splice(0)) {
          if (p.type === 3) sub.send({ type: 4, packetId: p.packetId! });
        }
        pub.send(publishPacket("steady/t", `m${sent}`, 1, ++sent));
        await idleTurns(1);
        if (pub.pending().some((p) => p.type === 4)) firstAckAt = sent;
      }
      // Written a few turns after it opened, as without a linger for acknowledgements; not
      // held while new sends keep coming (here only turns can end the wait).
      assert.ok(firstAckAt > 0 && firstAckAt <= 10, `first PUBACK after ${firstAckAt} PUBLISHes`);
      // Its last sends are never acknowledged: stored now, not held by the far deadlines
      // while the next test's CONNECT waits for its batch.
      await broker!.journal!.settled();
      sub.send({ type: 14, reasonCode: 0 });
      pub.send({ type: 14, reasonCode: 0 });
    },
  );

  test(
    "settled() writes an unacknowledged delivery at once, without the linger",
    OPTS,
    async () => {
      const sub = await persistentSubscriber("settle-sub", "settle/#");
      const { client: pub } = await PacketClient.connect(broker!, { clientId: "settle-pub" });
      pub.send(publishPacket("settle/t", "kept", 1, 1));
      const m = await sub.expect(3); // never acknowledged: the batch would wait 10 s
      const t0 = performance.now();
      await broker!.journal!.settled(); // as closing and a takeover do
      const waited = performance.now() - t0;
      const stored = (await store!.sessions.load()).sessions.find((s) =>
        s.clientId === "settle-sub"
      );
      assert.deepEqual(stored?.inflight.map((i) => i.packetId), [m.packetId]);
      assert.ok(waited < 5_000, `settled after ${waited} ms`);
      sub.send({ type: 14, reasonCode: 0 });
      pub.send({ type: 14, reasonCode: 0 });
    },
  );
});

describe("session journal linger (Redis): deadlines", () => {
  useBroker();

  test(
    "a delivery not acknowledged is stored before the publisher's PUBACK",
    OPTS,
    async () => {
      const sub = await persistentSubscriber("silent-sub", "silent/#");
      const { client: pub } = await PacketClient.connect(broker!, { clientId: "silent-pub" });
      pub.send(publishPacket("silent/t", "kept", 1, 1));
      const m = await sub.expect(3); // never acknowledged
      const t0 = performance.now();
      await pub.expect(4);
      const waited = performance.now() - t0;
      const reader = await openRedisStore(redis!.url);
      try {
        const stored = (await reader.sessions.load()).sessions.find((s) =>
          s.clientId === "silent-sub"
        );
        assert.deepEqual(stored?.inflight.map((i) => i.packetId), [m.packetId]);
      } finally {
        await reader.close();
      }
      assert.ok(waited < 1000, `PUBACK after ${waited} ms`);
      sub.send({ type: 14, reasonCode: 0 });
      pub.send({ type: 14, reasonCode: 0 });
    },
  );
});
