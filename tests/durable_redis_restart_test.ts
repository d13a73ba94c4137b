/**
 * Redis restarted under load (appendonly, appendfsync always): QoS 1 messages
 * stream to an offline persistent subscriber while redis-server is killed and
 * started again. Publishers whose messages could not be stored are
 * disconnected without an acknowledgement and resend after reconnecting
 * (MQTT.js does so on its own); in the end every acknowledged message is
 * delivered. Prints the figures.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { defaultConfig } from "../src/config/schema.ts";
import { type RunningApp, startApp } from "../src/app.ts";
import { testRuntime } from "./helpers/harness.ts";
import { RedisServer, skipWithoutRedis } from "./helpers/redis_server.ts";
import { Clients, sleep, subscribe, withTimeout } from "./helpers/mqttjs.ts";

const skip = skipWithoutRedis();
const N = 3000;
let redis: RedisServer | undefined;
let app: RunningApp | undefined;
const lines: string[] = [];
const clients = new Clients(() => `mqtt://127.0.0.1:${app!.ports.socket}`);

before(async () => {
  if (skip) return;
  redis = await RedisServer.start({ appendonly: true });
  const config = defaultConfig();
  config.enableTestMode = false;
  config.host = "127.0.0.1";
  config.socket.port = 0;
  config.maxQueuedMessages = 2 * N; // room for the resent duplicates too
  config.redis.url = redis.url;
  app = await startApp(await testRuntime(), config, { log: (l) => lines.push(l) });
});

after(async () => {
  await clients.closeAll();
  await app?.stop();
  await redis?.dispose();
});

describe("Redis restarted under load", () => {
  test("every acknowledged message reaches the persistent subscriber", {
    skip,
    timeout: 120_000,
  }, async () => {
    const sub = await clients.connect({ clientId: "restart-sub", clean: false });
    await subscribe(sub.client, "restart/#", { qos: 1 });
    await withTimeout(sub.client.endAsync(), "subscriber disconnect");

    const pub = await clients.connect({
      clientId: "restart-pub",
      clean: false,
      reconnectPeriod: 200,
    });
    let reconnects = 0;
    pub.client.on("reconnect", () => reconnects++);
    const acked = new Set<string>();
    const all = new Promise<void>((resolve) => {
      let next = 0;
      const send = () => {
        if (next >= N) return;
        const payload = `m${next++}`;
        pub.client.publish("restart/x", payload, { qos: 1 }, (err) => {
          if (!err) acked.add(payload);
          if (acked.size === N) resolve();
          send();
        });
      };
      for (let w = 0; w < 50; w++) send();
    });
    while (acked.size < N / 3) await sleep(10);
    await redis!.stop("SIGKILL");
    await sleep(1000);
    await redis!.restart();
    await withTimeout(all, "every message acknowledged in the end", 90_000);

    const again = await clients.connect({ clientId: "restart-sub", clean: false });
    const inbox = again.inbox.messages;
    let seen = -1;
    while (seen !== inbox.length) {
      seen = inbox.length;
      await sleep(2000);
    }
    const got = new Set(inbox.map((m) => m.payload));
    const lost = [...acked].filter((p) => !got.has(p));
    console.log(
      `redis restart: ${N} acknowledged, ${inbox.length} delivered (${got.size} distinct), ` +
        `lost ${lost.length}, publisher reconnects ${reconnects}`,
    );
    assert.deepEqual(lost.slice(0, 10), []);
    assert.equal(lines.filter((l) => l.includes("unreachable")).length, 1, lines.join("\n"));
  });
});
