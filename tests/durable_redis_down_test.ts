/**
 * Redis unreachable under a running broker (enable-test-mode: false): QoS 0
 * and clean sessions keep working, a message a persistent session needs is
 * not acknowledged (the publisher is disconnected and may resend), the outage
 * is logged once, and when Redis is back the broker catches up: sessions
 * touched meanwhile are rewritten, so a restart still finds them.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { defaultConfig } from "../src/config/schema.ts";
import { type RunningApp, startApp } from "../src/app.ts";
import { testRuntime } from "./helpers/harness.ts";
import { RedisServer, skipWithoutRedis } from "./helpers/redis_server.ts";
import { Clients, publish, sleep, subscribe, withTimeout } from "./helpers/mqttjs.ts";

const skip = skipWithoutRedis();
let redis: RedisServer | undefined;
let app: RunningApp | undefined;
const lines: string[] = [];
const clients = new Clients(() => `mqtt://127.0.0.1:${app!.ports.socket}`);

async function startBroker(): Promise<RunningApp> {
  const config = defaultConfig();
  config.enableTestMode = false;
  config.host = "127.0.0.1";
  config.socket.port = 0;
  config.redis.url = redis!.url;
  config.http.enable = true;
  config.http.host = "127.0.0.1";
  config.http.port = 0;
  return await startApp(await testRuntime(), config, { log: (l) => lines.push(l) });
}

async function until(what: string, check: () => boolean | Promise<boolean>, ms = 20_000) {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out: ${what}`);
    await sleep(50);
  }
}

before(async () => {
  if (!skip) redis = await RedisServer.start({ appendonly: true });
});

after(async () => {
  await clients.closeAll();
  await app?.stop();
  await redis?.dispose();
});

describe("Redis hung under a running broker", () => {
  test("/health reports a Redis that stops answering, and when it answers again", {
    skip,
    timeout: 60_000,
  }, async () => {
    app = await startBroker();
    const health = async () => {
      const r = await fetch(`http://127.0.0.1:${app!.httpPort}/health`);
      return (await r.json()).checks?.redis;
    };
    try {
      assert.equal((await health()).ok, true);
      redis!.freeze(true); // connected, but no answer
      try {
        await until("/health reports Redis not answering", async () => !(await health()).ok);
        assert.match((await health()).detail, /not answering/);
      } finally {
        redis!.freeze(false);
      }
      await until("/health reports Redis answering again", async () => (await health()).ok);
      assert.equal(lines.filter((l) => l.includes("not answering")).length, 1, lines.join("\n"));
    } finally {
      await app.stop();
      app = undefined;
      lines.length = 0;
    }
  });
});

describe("Redis down under a running broker", () => {
  test("serves what needs no store, refuses to acknowledge what does, catches up", {
    skip,
    timeout: 90_000,
  }, async () => {
    app = await startBroker();
    const durable = await clients.connect({ clientId: "down-sub", clean: false });
    await subscribe(durable.client, "p/#", { qos: 1 });
    await withTimeout(durable.client.endAsync(), "disconnect");
    const live = await clients.connect({ clientId: "down-live", clean: true });
    await subscribe(live.client, "c/#", { qos: 1 });

    await redis!.stop("SIGKILL");
    const pub = await clients.connect({ clientId: "down-pub", clean: true });
    await publish(pub.client, "c/x", "qos0", { qos: 0 });
    await publish(pub.client, "c/x", "qos1", { qos: 1 }); // no persistent session: acknowledged
    await live.inbox.until((m) => m.length >= 2, "two live messages");
    assert.deepEqual(live.inbox.messages.map((m) => m.payload), ["qos0", "qos1"]);

    // The persistent session needs it: no PUBACK, the publisher is disconnected.
    let acked = false;
    pub.client.publish("p/x", "during", { qos: 1 }, (err) => (acked = !err));
    await withTimeout(pub.closed, "publisher disconnected");
    assert.equal(acked, false);
    assert.equal(lines.filter((l) => l.includes("unreachable")).length, 1, lines.join("\n"));
    assert.equal(lines.filter((l) => l.includes("writes fail")).length, 1, lines.join("\n"));
    const health = async () => {
      const r = await fetch(`http://127.0.0.1:${app!.httpPort}/health`);
      return (await r.json()).checks?.redis?.ok;
    };
    assert.equal(await health(), false, "/health reports Redis down");

    await redis!.restart();
    await until("writes succeed again", () => lines.some((l) => l.includes("succeed again")));
    assert.equal(await health(), true, "/health reports Redis back");
    const pub2 = await clients.connect({ clientId: "down-pub2", clean: true });
    await publish(pub2.client, "p/x", "after", { qos: 1 });

    // A restart finds the session with both messages: the one routed during the outage
    // was rewritten when Redis came back.
    await clients.closeAll();
    await app.stop();
    app = await startBroker();
    const back = await clients.connect({ clientId: "down-sub", clean: false });
    assert.equal(back.connack.sessionPresent, true);
    await back.inbox.until((m) => m.length >= 2, "two stored messages");
    assert.deepEqual(back.inbox.messages.map((m) => m.payload), ["during", "after"]);
  });
});
