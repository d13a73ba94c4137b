/**
 * Acknowledged means kept when persistent subscribers are online: the journal
 * leaves a delivery out of its batch when the subscriber acknowledged it
 * before the batch was written (src/store/batch.ts). A broker process on the
 * Redis store (and on SQLite) is killed with SIGKILL while QoS 1 and QoS 2
 * messages flow to an online persistent subscriber (acknowledging at once,
 * so most of its deliveries leave the batches) and to an offline one. After a
 * restart, every message acknowledged to the publisher has reached the online
 * subscriber (before the kill, or after it resumed) and the offline one, and
 * the offline one got each QoS 2 message once.
 */
import { after, afterEach, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { BrokerProcess } from "./helpers/broker_process.ts";
import { freePort, RedisServer, skipWithoutRedis } from "./helpers/redis_server.ts";
import { Clients, sleep, subscribe, withTimeout } from "./helpers/mqttjs.ts";

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

async function brokerWith(store: string): Promise<BrokerProcess> {
  port = await freePort();
  broker = new BrokerProcess(
    `mqttx:\n  host: 127.0.0.1\n  socket:\n    port: ${port}\n` +
      `  max-queued-messages: ${N}\n${store}`,
  );
  return broker;
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

/** Collect until nothing has come for 3 s. */
async function quiet(messages: unknown[]): Promise<void> {
  let seen = -1;
  while (seen !== messages.length) {
    seen = messages.length;
    await sleep(3000);
  }
}

async function killWhileOnline(broker: BrokerProcess): Promise<void> {
  await broker.start();
  const offline = await clients.connect({ clientId: "kill-off", clean: false });
  await subscribe(offline.client, "kill/#", { qos: 2 });
  await withTimeout(offline.client.endAsync(), "offline subscriber disconnect");
  const online = await clients.connect({ clientId: "kill-on", clean: false });
  await subscribe(online.client, "kill/#", { qos: 2 });

  const pub = await clients.connect({ clientId: "kill-pub", clean: true });
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
      pub.client.publish("kill/x", payload, { qos }, (err) => {
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
  const counts = new Map<string, number>();
  for (const p of offlineGot) counts.set(p, (counts.get(p) ?? 0) + 1);
  const lostOnline = [...ackedAtKill].filter((p) => !onlineGot.has(p));
  const lostOffline = [...ackedAtKill].filter((p) => !counts.has(p));
  const dup2 = [...counts].filter(([p, n]) => p.startsWith("q2") && n > 1).length;
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
