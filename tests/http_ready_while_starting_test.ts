/**
 * The operations endpoint answers while the broker is still starting: with the Redis store
 * being opened and read (Redis slow or hung at start, a large store), /ready and /health say
 * 503 "starting" instead of refusing the connection, which an orchestrator's liveness probe
 * takes for a dead process and restarts. Once started: 200.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { defaultConfig } from "../src/config/schema.ts";
import { startTestApp } from "./helpers/certs.ts";
import { freePort } from "./helpers/free_port.ts";
import { TOKEN } from "./helpers/ops.ts";
import { RedisServer, skipWithoutRedis } from "./helpers/redis_server.ts";
import { sleep } from "./helpers/mqttjs.ts";

const skip = skipWithoutRedis();

/** The first answer of `url` (the endpoint may not listen yet). */
async function firstAnswer(url: string, ms = 8_000): Promise<Response> {
  const deadline = Date.now() + ms;
  for (;;) {
    try {
      return await fetch(url);
    } catch (e) {
      if (Date.now() > deadline) throw e;
      await sleep(50);
    }
  }
}

test("/ready and /health answer 503 while the Redis store opens, 200 once started", {
  skip,
  timeout: 60_000,
}, async () => {
  const redis = await RedisServer.start();
  try {
    const port = await freePort();
    redis.freeze(true); // a hung Redis: the store's first commands wait
    const starting = startTestApp({
      enableTestMode: false,
      redis: { ...defaultConfig().redis, url: redis.url },
      http: { enable: true, host: "127.0.0.1", port, token: TOKEN },
    });
    starting.catch(() => {});
    const base = `http://127.0.0.1:${port}`;
    const ready = await firstAnswer(`${base}/ready`);
    assert.equal(ready.status, 503);
    assert.deepEqual(await ready.json(), { status: "starting" });
    const health = await fetch(`${base}/health`);
    assert.equal(health.status, 503);
    await health.body?.cancel();
    const api = await fetch(`${base}/api/v1/clients`, {
      headers: { authorization: `Bearer ${TOKEN}` },
    });
    assert.equal(api.status, 503, "the admin API waits for the broker");
    await api.body?.cancel();
    redis.freeze(false);
    const t = await starting;
    try {
      const r = await fetch(`${base}/ready`);
      assert.equal(r.status, 200);
      await r.body?.cancel();
    } finally {
      await t.stop();
    }
  } finally {
    redis.freeze(false);
    await redis.dispose();
  }
});
