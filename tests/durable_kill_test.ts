/**
 * Acknowledged means kept, with real processes: a broker on the Redis store
 * (and on the SQLite store) is killed with SIGKILL while thousands of QoS 1 and QoS 2 messages flow to an
 * offline persistent subscriber, then started again. Every acknowledged
 * message must reach the subscriber, QoS 2 ones exactly once, and the retained
 * message must still be there. The figures are
 * printed for the record (README, issue notes).
 */
import { after, afterEach, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { BrokerProcess } from "./helpers/broker_process.ts";
import { freePort, RedisServer, skipWithoutRedis } from "./helpers/redis_server.ts";
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

async function killMidStream(broker: BrokerProcess): Promise<void> {
  await broker.start();
  const sub = await clients.connect({ clientId: "kill-sub", clean: false });
  await subscribe(sub.client, "kill/#", { qos: 2 });
  await withTimeout(sub.client.endAsync(), "subscriber disconnect");

  const pub = await clients.connect({ clientId: "kill-pub", clean: true });
  await publish(pub.client, "kill-retained/a", "kept", { qos: 1, retain: true });
  const acked = new Set<string>();
  let killed = false;
  // At most WINDOW unacknowledged at a time, so the kill lands mid-stream.
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

  await broker.start();
  // The inbox listens from before CONNACK: queued messages follow it at once.
  const again = await clients.connect({ clientId: "kill-sub", clean: false });
  assert.equal(again.connack.sessionPresent, true);
  const inbox = again.inbox.messages;
  // Collect until nothing has come for 3 s.
  let seen = -1;
  while (seen !== inbox.length) {
    seen = inbox.length;
    await sleep(3000);
  }
  const received = inbox.map((m) => m.payload);
  const counts = new Map<string, number>();
  for (const r of received) counts.set(r, (counts.get(r) ?? 0) + 1);
  const lost = [...ackedAtKill].filter((p) => !counts.has(p));
  const dup1 = [...counts].filter(([p, n]) => p.startsWith("q1") && n > 1).length;
  const dup2 = [...counts].filter(([p, n]) => p.startsWith("q2") && n > 1).length;
  console.log(
    `kill -9 (${
      broker.output.match(/\((?:deno|bun), ([^)]*)\)/)?.[1]
    }): published ${next}, acknowledged ${ackedAtKill.size}, delivered ${received.length} ` +
      `(${counts.size} distinct), lost ${lost.length}, duplicated QoS 1 ${dup1}, QoS 2 ${dup2}`,
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
