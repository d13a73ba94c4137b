/**
 * A retained QoS 1 PUBLISH on the Redis store whose retained write is answered in the same
 * read as a session batch (Redis was slow: both replies came together) still gets its PUBACK.
 * It was queued on the batch that had just been stored, whose acknowledgements had already
 * run (src/broker/journal.ts flush), and never sent (tests/durable_kill_test.ts under load).
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { Broker } from "../src/broker/broker.ts";
import type { RedisStore } from "../src/store/redis.ts";
import { openRedisStore, RedisServer, skipWithoutRedis } from "./helpers/redis_server.ts";
import { PacketClient, publishPacket, testBrokerOptions } from "./helpers/packet_client.ts";

const skip = skipWithoutRedis();
let redis: RedisServer | undefined;
let store: RedisStore | undefined;
let broker: Broker | undefined;

before(async () => {
  if (skip) return;
  redis = await RedisServer.start();
  store = await openRedisStore(redis.url);
  broker = new Broker(testBrokerOptions(), store);
});
after(async () => {
  redis?.freeze(false);
  await broker?.close();
  await store?.close();
  await redis?.dispose();
});

const turns = async (n: number) => {
  for (let i = 0; i < n; i++) await new Promise((r) => setTimeout(r, 0));
};

test("a retained QoS 1 PUBLISH answered with a session batch is acknowledged", {
  skip,
  timeout: 30_000,
}, async () => {
  for (let round = 0; round < 5; round++) {
    const { client: sub } = await PacketClient.connect(broker!, {
      clientId: `ack-sub-${round}`,
      clean: false,
    });
    await broker!.journal!.settled();
    const { client: pub } = await PacketClient.connect(broker!, { clientId: `ack-pub-${round}` });
    redis!.freeze(true);
    // A session batch on its way (the persistent session's disconnect), then the retained write.
    sub.send({ type: 14 });
    await turns(3);
    pub.send({ ...publishPacket(`ack-retained/${round}`, "kept", 1, 7), retain: true });
    await turns(3);
    redis!.freeze(false); // both replies come back together
    const ack = await pub.expect(4, 3000);
    assert.equal(ack.packetId, 7);
    pub.send({ type: 14 });
  }
});
