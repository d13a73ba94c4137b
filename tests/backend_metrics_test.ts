/**
 * /metrics carries the figures of the backends once they are configured: the
 * Redis store's link, the cluster's live nodes, and each MQTT bridge's link,
 * queue and counters (issue 15: "the Redis, cluster and Kafka bridge figures
 * once those exist"; issue 17: bridge status in the metrics).
 */
import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import { parseConfig } from "../src/config/load.ts";
import { defaultConfig } from "../src/config/schema.ts";
import { mustRun } from "./helpers/harness.ts";
import { publish, withTimeout } from "./helpers/mqttjs.ts";
import {
  type OpsApp,
  parsePrometheus,
  prometheusParserAvailable,
  type Sample,
  sample,
  useOpsApp,
} from "./helpers/ops.ts";
import { RedisServer, skipWithoutRedis } from "./helpers/redis_server.ts";

const TIMEOUT = { timeout: 30_000 };
const skipParser = !prometheusParserAvailable() && !mustRun()
  ? "python3-prometheus-client not installed"
  : false;
const skipRedis = skipWithoutRedis();
const ops = useOpsApp();
const servers: RedisServer[] = [];
after(async () => {
  for (const s of servers) await s.dispose();
});

async function scrape(app: OpsApp): Promise<Sample[]> {
  const r = await fetch(app.base + "/metrics");
  assert.equal(r.status, 200);
  return parsePrometheus(await r.text());
}

describe("/metrics: backends", { skip: skipParser }, () => {
  test("an MQTT bridge whose upstream is down: link, queue, counters", TIMEOUT, async () => {
    // Port 1 refuses: the bridge stays down and queues what it should forward.
    const { bridges } = parseConfig(
      "mqttx:\n  bridges:\n    - name: up\n      url: mqtt://127.0.0.1:1\n" +
        "      topics: [{ filter: out/#, qos: 1 }]\n",
      "c.yml",
    );
    const app = await ops.start({ bridges });
    const c = await ops.clients.connect();
    for (let i = 0; i < 3; i++) await publish(c.client, "out/x", `m${i}`, { qos: 1 });
    await publish(c.client, "elsewhere", "not bridged", { qos: 1 });
    const s = await scrape(app);
    assert.equal(sample(s, "mqttx_bridge_up", { bridge: "up" }), 0);
    assert.equal(sample(s, "mqttx_bridge_queued_messages", { bridge: "up" }), 3);
    assert.equal(sample(s, "mqttx_bridge_messages_sent_total", { bridge: "up" }), 0);
    assert.equal(sample(s, "mqttx_bridge_messages_dropped_total", { bridge: "up" }), 0);
  });

  test(
    "the Redis store's link, and a cluster's live nodes",
    { ...TIMEOUT, skip: skipRedis },
    async () => {
      const redis = await RedisServer.start();
      servers.push(redis);
      const app = await ops.start({
        enableTestMode: false,
        redis: { ...defaultConfig().redis, url: redis.url },
        cluster: { ...defaultConfig().cluster, enable: true },
        brokerId: "metrics-a",
      });
      const s = await scrape(app);
      assert.equal(sample(s, "mqttx_redis_up"), 1);
      assert.equal(sample(s, "mqttx_cluster_nodes"), 1);
      await redis.stop();
      await withTimeout(
        (async () => {
          while (sample(await scrape(app), "mqttx_redis_up") !== 0) {
            await new Promise((r) => setTimeout(r, 100));
          }
        })(),
        "mqttx_redis_up goes to 0 when Redis stops",
      );
    },
  );
});
