/**
 * Acknowledged means kept, with real processes: a broker on the Redis store
 * (and on the SQLite store) is killed with SIGKILL while thousands of QoS 1 and QoS 2 messages flow to an
 * offline persistent subscriber, then started again. Every acknowledged
 * message must reach the subscriber, QoS 2 ones exactly once, and the retained
 * message must still be there. The figures are
 * printed for the record (README, issue notes).
 *
 * Then again with an online persistent subscriber beside the offline one: the
 * journal leaves out of its batches the deliveries acknowledged before they
 * were written (src/store/batch.ts), and nothing acknowledged to the
 * publisher may be lost for either subscriber.
 */
import { after, afterEach, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import type { MqttClient } from "mqtt";
import { BrokerProcess } from "./helpers/broker_process.ts";
import { RedisServer, skipWithoutRedis } from "./helpers/redis_server.ts";
import { freePort } from "./helpers/free_port.ts";
import { Clients, publish, sleep, subscribe, withTimeout } from "./helpers/mqttjs.ts";

const skip = skipWithoutRedis();
const N = 4000;
let redis: RedisServer | undefined;
let broker: BrokerProcess | undefined;
let port = 0;
const clients = new Clients(() => `mqtt://127.0.0.1:${port}`);

before(async () => {
  if (!skip) redis = await RedisServer.start();
});

afterEach(async () => {
  await clients.closeAll();
  await broker?.dispose();
  broker = undefined;
});

after(async () => {
  await redis?.dispose();
});

/** A broker process with this store section (YAML lines under `mqttx:`), on a free port. */
async function brokerWith(store: string): Promise<BrokerProcess> {
  port = await freePort();
  broker = new BrokerProcess(
    `mqttx:\n  host: 127.0.0.1\n  socket:\n    port: ${port}\n` +
      `  max-queued-messages: ${N}\n${store}`,
  );
  return broker;
}

describe("kill -9 on the durable stores", () => {
  test("Redis: every acknowledged QoS 1/2 message reaches the offline subscriber; QoS 2 once", {
    skip,
    timeout: 180_000,
  }, async () => {
    await killMidStream(
      await brokerWith(`  enable-test-mode: false\n  redis:\n    url: ${redis!.url}\n`),
    );
  });

  test("SQLite: every acknowledged QoS 1/2 message reaches the offline subscriber; QoS 2 once", {
    timeout: 180_000,
  }, async () => {
    await killMidStream(await brokerWith("  store:\n    type: sqlite\n"));
  });
});

/**
 * Publish QoS 1 and 2 alternately to kill/x, at most 200 unacknowledged at a
 * time so the kill lands mid-stream, until half are acknowledged; then kill
 * the broker. Returns what was acknowledged before the kill and how many were sent.
 */
async function publishAndKill(
  broker: BrokerProcess,
  pub: MqttClient,
): Promise<{ acked: Set<string>; sent: number }> {
  const acked = new Set<string>();
  let killed = false;
  const WINDOW = 200;
  let next = 0;
  const halfway = new Promise<void>((resolve) => {
    const send = () => {
      if (next >= N || killed) return;
      const i = next++;
      const qos = i % 2 === 0 ? 1 : 2;
      const payload = `q${qos}-${i}`;
      pub.publish("kill/x", payload, { qos }, (err) => {
        if (err || killed) return;
        acked.add(payload);
        if (acked.size >= N / 2) resolve();
        send();
      });
    };
    for (let w = 0; w < WINDOW; w++) send();
  });
  await withTimeout(halfway, "half the messages acknowledged", 120_000);
  killed = true;
  const ackedAtKill = new Set(acked);
  await broker.kill("SIGKILL");
  return { acked: ackedAtKill, sent: next };
}

/** Collect until nothing has come for 3 s. */
async function quiet(messages: unknown[]): Promise<void> {
  let seen = -1;
  while (seen !== messages.length) {
    seen = messages.length;
    await sleep(3000);
  }
}

/** How many acknowledged messages `got` misses, and how many QoS 2 ones it has twice. */
function tally(acked: Set<string>, got: string[]): { lost: string[]; dup1: number; dup2: number } {
  const counts = new Map<string, number>();
  for (const r of got) counts.set(r, (counts.get(r) ?? 0) + 1);
  const twice = (q: string) => [...counts].filter(([p, n]) => p.startsWith(q) && n > 1).length;
  return { lost: [...acked].filter((p) => !counts.has(p)), dup1: twice("q1"), dup2: twice("q2") };
}

async function killMidStream(broker: BrokerProcess): Promise<void> {
  await broker.start();
  const sub = await clients.connect({ clientId: "kill-sub", clean: false });
  await subscribe(sub.client, "kill/#", { qos: 2 });
  await withTimeout(sub.client.endAsync(), "subscriber disconnect");

  const pub = await clients.connect({ clientId: "kill-pub", clean: true });
  await publish(pub.client, "kill-retained/a", "kept", { qos: 1, retain: true });
  const { acked: ackedAtKill, sent: next } = await publishAndKill(broker, pub.client);

  await broker.start();
  // The inbox listens from before CONNACK: queued messages follow it at once.
  const again = await clients.connect({ clientId: "kill-sub", clean: false });
  assert.equal(again.connack.sessionPresent, true);
  await quiet(again.inbox.messages);
  const received = again.inbox.messages.map((m) => m.payload);
  const { lost, dup1, dup2 } = tally(ackedAtKill, received);
  console.log(
    `kill -9 (${
      broker.output.match(/\((?:deno|bun), ([^)]*)\)/)?.[1]
    }): published ${next}, acknowledged ${ackedAtKill.size}, delivered ${received.length} ` +
      `(${new Set(received).size} distinct), lost ${lost.length}, duplicated QoS 1 ${dup1}, ` +
      `QoS 2 ${dup2}`,
  );
  assert.deepEqual(lost.slice(0, 10), [], "acknowledged but never delivered");
  assert.equal(dup2, 0, "a QoS 2 message delivered twice");
  // The retained message is there too.
  const late = await clients.connect({ clientId: "kill-late", clean: true });
  await subscribe(late.client, "kill-retained/#", { qos: 1 });
  await late.inbox.until((m) => m.length === 1, "the retained message");
  assert.equal(late.inbox.messages[0].payload, "kept");
  assert.equal(late.inbox.messages[0].retain, true);
}

describe("kill -9 with an online persistent subscriber", () => {
  test("Redis: nothing acknowledged is lost for the online or the offline subscriber", {
    skip,
    timeout: 180_000,
  }, async () => {
    await killWhileOnline(
      await brokerWith(`  enable-test-mode: false\n  redis:\n    url: ${redis!.url}\n`),
    );
  });

  test("SQLite: nothing acknowledged is lost for the online or the offline subscriber", {
    timeout: 180_000,
  }, async () => {
    await killWhileOnline(await brokerWith("  store:\n    type: sqlite\n"));
  });
});

async function killWhileOnline(broker: BrokerProcess): Promise<void> {
  await broker.start();
  const offline = await clients.connect({ clientId: "kill-off", clean: false });
  await subscribe(offline.client, "kill/#", { qos: 2 });
  await withTimeout(offline.client.endAsync(), "offline subscriber disconnect");
  const online = await clients.connect({ clientId: "kill-on", clean: false });
  await subscribe(online.client, "kill/#", { qos: 2 });

  const pub = await clients.connect({ clientId: "kill-pub", clean: true });
  const { acked: ackedAtKill } = await publishAndKill(broker, pub.client);
  const before = online.inbox.messages.map((m) => m.payload);
  online.client.end(true);

  await broker.start();
  const resumed = await clients.connect({ clientId: "kill-on", clean: false });
  assert.equal(resumed.connack.sessionPresent, true);
  const back = await clients.connect({ clientId: "kill-off", clean: false });
  assert.equal(back.connack.sessionPresent, true);
  await quiet(resumed.inbox.messages);
  await quiet(back.inbox.messages);

  const onlineGot = new Set([...before, ...resumed.inbox.messages.map((m) => m.payload)]);
  const offlineGot = back.inbox.messages.map((m) => m.payload);
  const lostOnline = [...ackedAtKill].filter((p) => !onlineGot.has(p));
  const { lost: lostOffline, dup2 } = tally(ackedAtKill, offlineGot);
  console.log(
    `kill -9 online (${broker.output.match(/\((?:deno|bun), ([^)]*)\)/)?.[1]}): ` +
      `acknowledged ${ackedAtKill.size}; online got ${before.length} before the kill, ` +
      `${resumed.inbox.messages.length} after, lost ${lostOnline.length}; offline got ` +
      `${offlineGot.length}, lost ${lostOffline.length}, QoS 2 twice ${dup2}`,
  );
  assert.deepEqual(lostOnline.slice(0, 10), [], "acknowledged, never reached the online one");
  assert.deepEqual(lostOffline.slice(0, 10), [], "acknowledged, never reached the offline one");
  assert.equal(dup2, 0, "a QoS 2 message delivered twice to the offline subscriber");
}
