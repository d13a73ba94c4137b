/**
 * The operations endpoint: /ready and /health through start-up, a failing
 * backend and shutdown; /metrics parsed by the official Prometheus parser
 * (python3-prometheus-client) with values checked against known traffic.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { mustRun } from "./helpers/harness.ts";
import { publish, sleep, subscribe, uid } from "./helpers/mqttjs.ts";
import {
  parsePrometheus,
  prometheusParserAvailable,
  sample,
  startOpsApp,
  useOpsApp,
} from "./helpers/ops.ts";
import { opsHandler } from "../src/http/ops.ts";
import { HealthRegistry } from "../src/http/health.ts";
import { MetricsRegistry } from "../src/http/metrics.ts";
import { Broker } from "../src/broker/broker.ts";
import { brokerOptions } from "../src/app.ts";
import { defaultConfig } from "../src/config/schema.ts";
import { silentLogger } from "../src/log/logger.ts";
import { ConfigError, parseConfig } from "../src/config/load.ts";

const TIMEOUT = { timeout: 30_000 };
const { clients, start } = useOpsApp();

describe("/ready and /health", () => {
  test("503 while starting: the handler reports the app state", TIMEOUT, async () => {
    const broker = new Broker(brokerOptions(defaultConfig()));
    try {
      const handler = opsHandler({
        http: { enable: true, host: "127.0.0.1", port: 0 },
        broker: () => broker,
        health: new HealthRegistry(),
        metrics: new MetricsRegistry(),
        logger: silentLogger,
        state: () => "starting",
        listeners: () => [],
        version: "t",
        runtimeName: "t",
      });
      const r = await handler(new Request("http://x/ready"));
      assert.equal(r.status, 503);
      assert.deepEqual(await r.json(), { status: "starting" });
    } finally {
      await broker.close();
    }
  });

  test(
    "200 once started, 503 naming a backend that is down, 503 while stopping",
    TIMEOUT,
    async () => {
      const a = await start();
      let r = await fetch(`${a.base}/ready`);
      assert.equal(r.status, 200);
      assert.deepEqual(await r.json(), { status: "ready" });
      r = await fetch(`${a.base}/health`);
      assert.equal(r.status, 200);
      const ok = await r.json();
      assert.equal(ok.status, "ok");
      assert.equal(ok.checks.listeners.ok, true);
      assert.match(ok.checks.listeners.detail, /mqtt:\/\/127\.0\.0\.1:/);

      // A backend registers its state (what the Redis store and Kafka bridge do).
      let redisUp = false;
      const remove = a.app.health.register({
        name: "redis",
        status: () => (redisUp ? { ok: true } : { ok: false, detail: "connection refused" }),
      });
      r = await fetch(`${a.base}/health`);
      assert.equal(r.status, 503);
      const bad = await r.json();
      assert.deepEqual(bad.failing, ["redis"]);
      assert.equal(bad.checks.redis.detail, "connection refused");
      redisUp = true;
      assert.equal((await fetch(`${a.base}/health`)).status, 200);
      remove();

      // Shutdown: hold the broker's close (as a store flushing to its backend would) while we ask.
      await clients.connect({ clientId: uid() });
      const broker = a.app.broker;
      const close = broker.close.bind(broker);
      let release!: () => void;
      const held = new Promise<void>((r) => (release = r));
      broker.close = async () => {
        await held;
        await close();
      };
      const stopping = a.app.stop();
      r = await fetch(`${a.base}/ready`);
      assert.equal(r.status, 503);
      assert.deepEqual(await r.json(), { status: "stopping" });
      r = await fetch(`${a.base}/health`);
      assert.equal(r.status, 503);
      assert.deepEqual((await r.json()).failing, ["listeners"]);
      release();
      await stopping;
      await assert.rejects(fetch(`${a.base}/ready`)); // the endpoint went last
    },
  );

  test("a config file with a non-loopback host and no token: error naming key and line", () => {
    const yml = "mqttx:\n  http:\n    enable: true\n    host: 0.0.0.0\n";
    assert.throws(() => parseConfig(yml, "c.yml"), (e: unknown) => {
      assert.ok(e instanceof ConfigError);
      assert.equal(e.key, "mqttx.http.token");
      assert.equal(e.line, 4);
      assert.match(e.message, /^c\.yml:4: mqttx\.http\.token: http\.host is "0\.0\.0\.0"/);
      return true;
    });
    // With a token, or on a loopback host, it is fine.
    parseConfig(yml + "    token: t0ken\n", "c.yml");
    parseConfig("mqttx:\n  http:\n    enable: true\n    host: ::1\n", "c.yml");
  });

  test("refuses a non-loopback host without a token, naming http.token", TIMEOUT, async () => {
    await assert.rejects(
      startOpsApp({ http: { host: "0.0.0.0", token: "" } }),
      /http\.token must be set/,
    );
  });
});

const skipParser = !prometheusParserAvailable() && !mustRun()
  ? "python3-prometheus-client not installed"
  : false;

describe("/metrics", { skip: skipParser }, () => {
  test("parses with prometheus_client and counts known traffic", TIMEOUT, async () => {
    const a = await start({
      mqtt5: { ...(await import("../src/config/schema.ts")).defaultConfig().mqtt5 },
    });
    const topic = `m/${uid()}`;
    const sub = await clients.connect({ clientId: `sub-${uid()}`, clean: false });
    await subscribe(sub.client, `${topic}/#`, { qos: 1 });
    const pub = await clients.connect({ clientId: `pub-${uid()}` });
    for (let i = 0; i < 3; i++) await publish(pub.client, `${topic}/a`, "12345", { qos: 0 });
    for (let i = 0; i < 2; i++) {
      await publish(pub.client, `${topic}/b`, "0123456789", { qos: 1 });
    }
    await publish(pub.client, `${topic}/r`, "kept", { qos: 0, retain: true });
    await sub.inbox.count(6);
    // A 5.0 client refused for a bad authentication method counts as an auth failure.
    await clients.connect({
      clientId: uid(),
      protocolVersion: 5,
      properties: { authenticationMethod: "NOPE" },
    }).catch(() => {});

    const r = await fetch(`${a.base}/metrics`);
    assert.equal(r.status, 200);
    assert.match(r.headers.get("content-type") ?? "", /^text\/plain; version=0\.0\.4/);
    const s = parsePrometheus(await r.text());
    const v = (name: string, labels = {}) => sample(s, name, labels);
    assert.equal(v("mqttx_messages_received_total", { qos: "0" }), 4);
    assert.equal(v("mqttx_messages_received_total", { qos: "1" }), 2);
    assert.equal(v("mqttx_message_bytes_received_total", { qos: "0" }), 3 * 5 + 4);
    assert.equal(v("mqttx_message_bytes_received_total", { qos: "1" }), 20);
    assert.equal(v("mqttx_messages_sent_total", { qos: "0" }), 4);
    assert.equal(v("mqttx_messages_sent_total", { qos: "1" }), 2);
    assert.equal(v("mqttx_message_bytes_sent_total", { qos: "1" }), 20);
    assert.equal(v("mqttx_clients_connected"), 2);
    assert.equal(v("mqttx_connections", { type: "tcp" }), 2);
    assert.equal(v("mqttx_sessions", { state: "connected" }), 2);
    assert.equal(v("mqttx_subscriptions"), 1);
    assert.equal(v("mqttx_retained_messages"), 1);
    assert.equal(v("mqttx_authentication_failures_total"), 1);
    for (const reason of ["queue_full", "too_large", "expired", "not_authorized", "rate_limited"]) {
      assert.equal(typeof v("mqttx_messages_dropped_total", { reason }), "number", reason);
    }
    assert.ok(v("mqttx_network_bytes_received_total")! > 0);
    assert.ok(v("process_resident_memory_bytes")! > 1e6);
    assert.equal(typeof v("mqttx_event_loop_delay_seconds"), "number");

    // The subscriber leaves: its session stays offline (clean: false).
    await new Promise<void>((done) => sub.client.end(false, () => done()));
    const again = parsePrometheus(await (await fetch(`${a.base}/metrics`)).text());
    assert.equal(sample(again, "mqttx_sessions", { state: "offline" }), 1);
  });

  test("expired and too-large drops are counted by reason", TIMEOUT, async () => {
    const a = await start();
    const topic = `d/${uid()}`;
    // A 5.0 subscriber that accepts packets of at most 64 bytes.
    const sub = await clients.connect({
      clientId: uid(),
      protocolVersion: 5,
      properties: { maximumPacketSize: 64 },
    });
    await subscribe(sub.client, topic, { qos: 0 });
    const pub = await clients.connect({ clientId: uid(), protocolVersion: 5 });
    await publish(pub.client, topic, "x".repeat(200), { qos: 1 });
    await publish(pub.client, topic, "small", { qos: 1 });
    await sub.inbox.payload("small");

    // A message that expires while its subscriber is offline is dropped when it comes back.
    const id = uid();
    const opts = { clientId: id, protocolVersion: 5 as const, clean: false };
    const away = await clients.connect({ ...opts, properties: { sessionExpiryInterval: 60 } });
    await subscribe(away.client, `${topic}/x`, { qos: 1 });
    await new Promise<void>((done) => away.client.end(false, () => done()));
    await publish(pub.client, `${topic}/x`, "stale", {
      qos: 1,
      properties: { messageExpiryInterval: 1 },
    });
    await publish(pub.client, `${topic}/x`, "fresh", { qos: 1 });
    await sleep(1500);
    const back = await clients.connect({ ...opts, properties: { sessionExpiryInterval: 60 } });
    await back.inbox.payload("fresh");
    assert.equal(back.inbox.on(`${topic}/x`).length, 1);

    const s = parsePrometheus(await (await fetch(`${a.base}/metrics`)).text());
    assert.equal(sample(s, "mqttx_messages_dropped_total", { reason: "too_large" }), 1);
    assert.equal(sample(s, "mqttx_messages_dropped_total", { reason: "expired" }), 1);
  });
});
