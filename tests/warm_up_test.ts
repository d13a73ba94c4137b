/**
 * `warm-up: true` (src/broker/warm_up.ts): before the ports open, a throwaway broker carries a
 * synthetic load. It must run through the real path (every PUBLISH decoded, authorized and
 * routed, within max-bytes-in-message) and leave no trace in the broker that serves clients:
 * no client, session, counter or hook call of its own, and no timer left behind.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { startApp } from "../src/app.ts";
import { brokerOptions } from "../src/app.ts";
import { defaultConfig } from "../src/config/schema.ts";
import type { BrokerHooks } from "../src/broker/hooks.ts";
import { warmUp } from "../src/broker/warm_up.ts";
import { testRuntime } from "./helpers/harness.ts";
import { Clients, publish, subscribe, uid } from "./helpers/mqttjs.ts";

function counting() {
  const seen = { connected: 0, published: 0, authorized: 0, topics: new Set<string>() };
  const hooks: BrokerHooks = {
    onConnected: () => void seen.connected++,
    onPublished: () => void seen.published++,
    authorizePublish: (_c, topic) => {
      seen.authorized++;
      seen.topics.add(topic);
      return true;
    },
  };
  return { seen, hooks };
}

test("warm-up: every PUBLISH goes through the broker's path, even with a small max packet size", async () => {
  for (const maxBytes of [8092, 100]) {
    const config = defaultConfig();
    config.maxBytesInMessage = maxBytes;
    const { seen, hooks } = counting();
    const done = await warmUp(brokerOptions(config), [hooks], { clients: 20, perClient: 40 });
    const n = 2 * 20 * 40;
    assert.equal(done.published, n, `max ${maxBytes}`);
    assert.ok(done.delivered > 0, `max ${maxBytes}: its subscribers got messages`);
    assert.equal(seen.connected, 20, `max ${maxBytes}: every warm-up client connected`);
    // Authorized and accepted: none refused as too large, none lost to a closed connection.
    assert.equal(seen.authorized, n, `max ${maxBytes}`);
    assert.equal(seen.published, n, `max ${maxBytes}`);
    assert.ok(seen.topics.has("warm/0/0"));
  }
});

test("warm-up: its connections are closed when it returns; a CONNECT that cannot fit makes it do nothing", async () => {
  const config = defaultConfig();
  // A connection still open would be a linger timer holding the throwaway broker for 2 s.
  assert.deepEqual(
    { ...await warmUp(brokerOptions(config), []), delivered: 1 },
    { published: 2 * 100 * 100, delivered: 1, lingering: 0 },
  );
  config.maxBytesInMessage = 20; // smaller than any warm-up CONNECT: each is refused
  assert.deepEqual(await warmUp(brokerOptions(config), []), {
    published: 0,
    delivered: 0,
    lingering: 0,
  });
});

test("warm-up: the broker that serves clients starts with nothing of it", async () => {
  const lines: string[] = [];
  const config = defaultConfig();
  config.host = "127.0.0.1";
  config.socket.port = 0;
  config.log.level = "debug";
  const { seen, hooks } = counting();
  const app = await startApp(await testRuntime(), config, {
    log: (l) => lines.push(l),
    hooks: [hooks],
  });
  const clients = new Clients(() => `mqtt://127.0.0.1:${app.ports.socket}`);
  try {
    assert.ok(
      lines.some((l) => /warm-up.*published=20000 delivered=[1-9]/.test(l)),
      lines.join("\n"),
    );
    const b = app.broker;
    assert.deepEqual(
      [seen.connected, seen.published, seen.authorized, b.sessions.size, b.connectedCount],
      [0, 0, 0, 0, 0],
    );
    assert.deepEqual(
      [b.stats.received, b.stats.sent, b.stats.maxConnected, b.stats.networkIn],
      [0, 0, 0, 0],
    );
    assert.deepEqual([...b.stats.publishIn], [0, 0, 0]);
    assert.equal(b.store.retainedCount(), 0);
    assert.ok(!lines.some((l) => l.includes("$warm-up")), "no warm-up client in the log");

    // And it serves as usual.
    const sub = await clients.connect({ clientId: uid() });
    await subscribe(sub.client, "warm/#", { qos: 1 });
    const pub = await clients.connect({ clientId: uid() });
    await publish(pub.client, "warm/0/0", "real", { qos: 1 });
    assert.equal((await sub.inbox.payload("real", "warm/0/0")).qos, 1);
    assert.equal(seen.connected, 2);
    assert.equal(seen.published, 1);
  } finally {
    await clients.closeAll();
    await app.stop();
  }
});

test("warm-up: false skips it", async () => {
  const lines: string[] = [];
  const config = defaultConfig();
  config.host = "127.0.0.1";
  config.socket.port = 0;
  config.log.level = "debug";
  config.warmUp = false;
  const app = await startApp(await testRuntime(), config, { log: (l) => lines.push(l) });
  try {
    assert.ok(lines.some((l) => l.includes("listening on")), lines.join("\n"));
    assert.ok(!lines.some((l) => l.includes("warm-up")), lines.join("\n"));
  } finally {
    await app.stop();
  }
});

test("warm-up: a failure in it is logged and the broker starts without it", async () => {
  const lines: string[] = [];
  const config = defaultConfig();
  config.host = "127.0.0.1";
  config.socket.port = 0;
  const runtime = {
    ...await testRuntime(),
    collectGarbage: () => {
      throw new Error("no collector today");
    },
  };
  const app = await startApp(runtime, config, { log: (l) => lines.push(l) });
  const clients = new Clients(() => `mqtt://127.0.0.1:${app.ports.socket}`);
  try {
    assert.ok(
      lines.some((l) => l.includes("warm-up failed, starting without it") && l.includes("today")),
      lines.join("\n"),
    );
    const c = await clients.connect({ clientId: uid() });
    assert.ok(c.client.connected);
  } finally {
    await clients.closeAll();
    await app.stop();
  }
});
