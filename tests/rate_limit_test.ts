// rate-limiter: a token bucket per configured topic filter for QoS 0 publishes.
import { afterEach, describe, test } from "node:test";
import assert from "node:assert/strict";
import { closeAll, newBroker, PacketClient, str, text } from "./helpers/packet_client.ts";
import type { Broker } from "../src/broker/broker.ts";
import type { QoS } from "../src/mqtt/packet.ts";
import { TokenBucket } from "../src/ratelimit/token_bucket.ts";
import { type RateLimiterConfig, topicRateLimiter } from "../src/ratelimit/rate_limiter.ts";
import { startBroker, type TestBroker } from "./helpers/harness.ts";
import { Clients, publish, subscribe, uid } from "./helpers/mqttjs.ts";

afterEach(closeAll);

const TIMEOUT = { timeout: 20_000 };

describe("token bucket", () => {
  test("starts full, refills lazily from elapsed time, never above capacity", () => {
    let now = 1000;
    const b = new TokenBucket(3, 2, 1, () => now);
    assert.deepEqual([b.tryAcquire(), b.tryAcquire(), b.tryAcquire(), b.tryAcquire()], [
      true,
      true,
      true,
      false,
    ]);
    now += 499; // 2 tokens/s: 0.998 tokens
    assert.equal(b.tryAcquire(), false);
    now += 1;
    assert.equal(b.tryAcquire(), true);
    now += 60_000;
    assert.equal(b.available(), 3);
    now -= 10_000; // a clock going back refills nothing and takes nothing
    assert.equal(b.available(), 3);
  });

  test("token-consumed-per-acquire", () => {
    let now = 0;
    const b = new TokenBucket(5, 1, 2, () => now);
    assert.equal(b.tryAcquire(), true);
    assert.equal(b.tryAcquire(), true);
    assert.equal(b.tryAcquire(), false); // 1 left
    assert.equal(b.canAcquire(), false);
    now += 1000;
    assert.equal(b.tryAcquire(), true);
  });
});

function limitedBroker(config: RateLimiterConfig, now: () => number) {
  const limiter = topicRateLimiter(config, { now });
  const b = newBroker({ hooks: [limiter] });
  return { b, limiter };
}

function pub(topic: string, payload: string, qos: QoS, packetId?: number) {
  return {
    type: 3 as const,
    topic,
    payload: text(payload),
    qos,
    retain: false,
    dup: false,
    packetId,
  };
}

async function subscriber(b: Broker, filter: string): Promise<PacketClient> {
  const { client } = await PacketClient.connect(b, { clientId: "sub-" + filter });
  client.send({ type: 8, packetId: 1, subscriptions: [{ topicFilter: filter, qos: 1 }] });
  await client.expect(9);
  return client;
}

/** Payloads received until (and without) the sentinel `end`. */
async function until(c: PacketClient, end: string): Promise<string[]> {
  const got: string[] = [];
  for (;;) {
    const p = await c.expect(3);
    if (p.qos > 0) c.send({ type: 4, packetId: p.packetId! });
    const s = str(p.payload);
    if (s === end) return got;
    got.push(s);
  }
}

describe("rate limiter", () => {
  const config: RateLimiterConfig = {
    enable: true,
    topicRateLimits: [
      { topic: "sensors/+", capacity: 2, replenishRate: 1, tokenConsumedPerAcquire: 1 },
    ],
  };

  test("over-limit QoS 0 publishes are dropped; QoS 1 and other topics pass", async () => {
    let now = 0;
    const { b, limiter } = limitedBroker(config, () => now);
    const s = await subscriber(b, "#");
    const { client: p } = await PacketClient.connect(b, { clientId: "p", protocolVersion: 5 });
    for (let i = 1; i <= 5; i++) p.send(pub("sensors/t", `q0-${i}`, 0));
    p.send(pub("other", "free", 0));
    p.send(pub("sensors/t", "q1", 1, 1)); // QoS 1 neither pays nor is refused
    assert.notEqual((await p.expect(4)).reasonCode, 0x87);
    p.send(pub("sensors/t", "end", 1, 2));
    assert.deepEqual(await until(s, "end"), ["q0-1", "q0-2", "free", "q1"]);
    assert.equal(limiter.dropped, 3);
    assert.equal(p.closed, false);
    // One second later one token is back.
    now += 1000;
    p.send(pub("sensors/u", "again-1", 0));
    p.send(pub("sensors/u", "again-2", 0));
    p.send(pub("sensors/u", "end2", 1, 3));
    assert.deepEqual(await until(s, "end2"), ["again-1"]);
  });

  test("a topic under several limits needs tokens from each", async () => {
    const now = 0;
    const { b } = limitedBroker({
      enable: true,
      topicRateLimits: [
        { topic: "a/#", capacity: 10, replenishRate: 1, tokenConsumedPerAcquire: 1 },
        { topic: "a/b", capacity: 1, replenishRate: 1, tokenConsumedPerAcquire: 1 },
      ],
    }, () => now);
    const s = await subscriber(b, "a/#");
    const { client: p } = await PacketClient.connect(b, { clientId: "p" });
    p.send(pub("a/b", "1", 0));
    p.send(pub("a/b", "2", 0)); // a/b's bucket is empty; a/#'s is not charged for it
    for (let i = 3; i <= 11; i++) p.send(pub("a/c", String(i), 0));
    p.send(pub("a/c", "12", 0)); // a/# has given its 10
    p.send(pub("a/z", "end", 1, 1));
    assert.deepEqual(await until(s, "end"), ["1", "3", "4", "5", "6", "7", "8", "9", "10", "11"]);
  });

  test("a QoS 0 will is stored even when the bucket is empty", async () => {
    const now = 0;
    const { b } = limitedBroker(config, () => now);
    const s = await subscriber(b, "sensors/+");
    const { client: p } = await PacketClient.connect(b, { clientId: "p" });
    p.send(pub("sensors/t", "1", 0));
    p.send(pub("sensors/t", "2", 0));
    p.send(pub("sensors/t", "3", 0)); // dropped: empty now
    p.send(pub("sensors/t", "end", 1, 1));
    assert.deepEqual(await until(s, "end"), ["1", "2"]);
    const { client: w } = await PacketClient.connect(b, {
      clientId: "w",
      will: { topic: "sensors/w", payload: text("will"), qos: 0, retain: false },
    });
    w.drop();
    await w.expectClosed();
    assert.equal(str((await s.expect(3)).payload), "will");
  });
});

describe("rate limiter through the app (MQTT.js)", () => {
  let broker: TestBroker | undefined;
  const clients = new Clients(() => broker!.url);
  afterEach(async () => {
    await clients.closeAll();
    await broker?.stop();
    broker = undefined;
  });

  test("rate-limiter.topic-rate-limits from the config", TIMEOUT, async () => {
    const t = `limited/${uid()}`;
    broker = await startBroker({
      rateLimiter: {
        enable: true,
        topicRateLimits: [{ topic: t, capacity: 2, replenishRate: 1, tokenConsumedPerAcquire: 1 }],
      },
    });
    if (broker.external) return;
    const s = await clients.connect({ protocolVersion: 4, clientId: `s-${uid()}` });
    await subscribe(s.client, t, { qos: 1 });
    const p = await clients.connect({ protocolVersion: 4, clientId: `p-${uid()}` });
    for (let i = 0; i < 20; i++) await publish(p.client, t, `m${i}`, { qos: 0 });
    await publish(p.client, t, "end", { qos: 1 });
    await s.inbox.payload("end");
    const got = s.inbox.messages.filter((m) => m.payload !== "end").length;
    // The bucket holds 2 and gains 1 per second: 20 in a row cannot all pass.
    assert.ok(got >= 2 && got < 20, `${got} of 20 QoS 0 messages passed`);
  });
});
