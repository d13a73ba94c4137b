import { describe, test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import { defaultConfig, SCHEMA, type Section } from "./schema.ts";
import { parseConfig } from "./load.ts";

const EXAMPLE = new URL("../../config.example.yml", import.meta.url);

describe("defaultConfig", () => {
  test("has the seed defaults", () => {
    const c = defaultConfig();
    assert.equal(c.version, "unknown");
    assert.equal(c.brokerId, "1");
    assert.equal(c.heartbeat, 60_000);
    assert.equal(c.host, "0.0.0.0");
    assert.equal(c.soBacklog, 512);
    assert.equal(c.enableTopicSubPubSecure, false);
    assert.equal(c.enableInnerCache, true);
    assert.equal(c.enableTestMode, true); // ours: runs with no Redis
    assert.equal(c.serializeStrategy, "JSON");
    assert.equal(c.ignoreClientSelfPub, false); // ours: the spec delivers own messages
    assert.equal(c.maxBytesInMessage, 8092);
    assert.equal(c.maxInflight, 100);
    assert.equal(c.maxQueuedMessages, 1000);
    assert.equal(c.redis.url, "redis://127.0.0.1:6379");
    assert.equal(c.redis.clusterSessionHashKey, "mqttx:session:key");
    assert.equal(c.redis.msgPayLoadClientsSetKey, "mqttx:msg:payload:clients:");
    assert.deepEqual(c.cluster, {
      innerCacheConsistencyKey: "mqttx:cache_consistence",
      enable: false,
      type: "redis",
      heartbeatInterval: 1_000,
      nodeTimeout: 5_000,
      kafkaBrokers: [],
      kafkaTopicPrefix: "mqttx.cluster.",
      kafkaBufferSize: 100_000,
      reusePort: false,
    });
    assert.deepEqual(c.ssl, {
      enable: false,
      keyStoreLocation: "classpath:tls/mqttx.keystore",
      keyStorePassword: "123456",
      keyStoreType: "pkcs12",
      clientAuth: "NONE",
      useCnAsUsername: false,
    });
    assert.deepEqual(c.socket, { enable: true, port: 1883 });
    assert.deepEqual(c.websocket, { enable: false, port: 8083, path: "/mqtt" });
    assert.deepEqual(c.shareTopic, { enable: true, shareSubStrategy: "round" });
    assert.deepEqual(c.sysTopic, { enable: false, interval: 60_000 });
    assert.equal(c.messageBridge.enable, false);
    assert.deepEqual(c.messageBridge.topics, []);
    assert.deepEqual(c.messageBridge.kafkaBrokers, []);
    assert.equal(c.messageBridge.ackAfterKafka, false);
    assert.deepEqual(c.rateLimiter, { enable: false, topicRateLimits: [] });
    assert.deepEqual(c.auth, {
      allowAnonymous: true,
      isMandatory: false,
      users: [],
      connectRatePerMinute: 0,
      readTimeout: 3_000,
      connectTimeout: 3_000,
    });
    assert.equal(c.maxKeepAlive, 0);
    assert.equal(c.maxSubscriptionsPerClient, 10_000);
    assert.deepEqual(c.mqtt5, {
      topicAliasMaximum: 100,
      outgoingTopicAliases: false,
      responseInformation: "",
      serverMoved: false,
    });
    assert.deepEqual(c.listeners, []);
    assert.deepEqual(c.acl, { enable: false, defaultPolicy: "allow", rules: [] });
  });

  test("returns a fresh object each call", () => {
    const a = defaultConfig();
    a.socket.port = 1;
    a.messageBridge.topics.push({ topic: "x" });
    const b = defaultConfig();
    assert.equal(b.socket.port, 1883);
    assert.deepEqual(b.messageBridge.topics, []);
  });

  test("every default has a schema entry and every required schema entry a default", () => {
    const walk = (section: Section, value: Record<string, unknown>, path: string) => {
      for (const key of Object.keys(value)) {
        assert.ok(key in section, `${path}.${key} has no schema entry`);
      }
      for (const [key, field] of Object.entries(section)) {
        const optional = ((field.kind === "string" || field.kind === "enum") && field.optional) ||
          field.kind === "ignored" || field.kind === "alias";
        if (!optional) assert.ok(key in value, `${path}.${key} has no default`);
        if (field.kind === "section") {
          walk(field.fields, value[key] as Record<string, unknown>, `${path}.${key}`);
        }
      }
    };
    walk(SCHEMA, defaultConfig() as unknown as Record<string, unknown>, "mqttx");
  });
});

describe("config.example.yml", () => {
  const text = fs.readFileSync(EXAMPLE, "utf8");

  test("parses to exactly the defaults", () => {
    assert.deepEqual(parseConfig(text, "config.example.yml"), defaultConfig());
  });

  test("mentions every item", () => {
    const walk = (section: Section, path: string) => {
      for (const [key, field] of Object.entries(section)) {
        const kebab = key.replace(/[A-Z]/g, (c) => "-" + c.toLowerCase());
        assert.match(text, new RegExp(`^\\s*#?\\s*${kebab}:`, "m"), `${path}.${kebab} missing`);
        if (field.kind === "section") walk(field.fields, `${path}.${kebab}`);
      }
    };
    walk(SCHEMA, "mqttx");
  });

  test("its commented production example is valid", () => {
    const start = text.indexOf("# mqttx:\n");
    assert.ok(start > 0);
    const prod = text.slice(start).split("\n").map((l) => l.replace(/^# ?/, "")).join("\n");
    const c = parseConfig(prod, "prod.yml");
    assert.equal(c.enableTestMode, false);
    assert.equal(c.cluster.enable, true);
    assert.equal(c.ssl.certFile, "/etc/mqttx/server.crt");
    assert.equal(c.sysTopic.interval, 30_000);
  });
});
