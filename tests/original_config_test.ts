/**
 * A configuration written for the original mqttx 1.2.3 (Java, Spring Boot)
 * starts: every key of its MqttxConfig is accepted, spelt as Spring's relaxed
 * binding allows; keys that mean nothing here are listed once as ignored.
 */
import { afterEach, describe, test } from "node:test";
import assert from "node:assert/strict";
import { parseConfigReport } from "../src/config/load.ts";
import { ignoredKeysLine } from "../src/config/load.ts";
import { startTestApp, type TestApp } from "./helpers/certs.ts";
import { bytesOf, connectPacket, connectRaw, sleep } from "./helpers/raw_socket.ts";
import { PacketDecoder } from "../src/mqtt/decoder.ts";
import type { Packet } from "../src/mqtt/packet.ts";

let app: TestApp | undefined;
afterEach(async () => {
  await app?.stop();
  app = undefined;
});

/** application.yml of 1.2.3 with every MqttxConfig key set (values as its defaults or close). */
const ORIGINAL = `# 公共配置文件
spring:
  application:
    name: mqttx
  profiles:
    active: dev
  redis:
    host: localhost

mqttx:
  broker-id: "001"
  version: 1.2.3
  heartbeat: 60s
  host: 127.0.0.1
  so-backlog: 512
  enable-topic-sub-pub-secure: false
  serialize-strategy: kryo
  ignore-client-self-pub: true
  http-client-connect-timeout: 10s
  max-bytes-in-message: 8092
  redis:
    cluster-session-hash-key: "mqttx:session:key"
    topic-prefix: "mqttx:topic:"
    retain-message-prefix: "mqttx:retain:"
    pub-msg-set-prefix: "mqttx:client:pubmsg:"
    pub-rel-msg-set-prefix: "mqttx:client:pubrelmsg:"
    topic-set-key: "mqttx:alltopic"
    message-id-prefix: "mqttx:messageId:"
    client-topic-set-prefix: "mqttx:client:topicset:"
    msg-pay-load-key: "mqttx:msg:payload"
    msg-pay-load-clients-set-key: "mqttx:msg:payload:clients:"
  cluster:
    inner-cache-consistency-key: "mqttx:cache_consistence"
    enable: false
    type: redis
  ssl:
    enable: false
    key-store-location: classpath:tls/mqttx.keystore
    key-store-password: 123456
    key-store-type: pkcs12
    client-auth: NONE
  socket:
    enable: true
    port: 0
  web-socket:
    enable: true
    port: 0
    path: /mqtt
  share-topic:
    share-sub-strategy: round
  sys-topic:
    enable: true
    interval: 1m
    qos: 0
  message-bridge:
    enable: false
    topics:
      - bridge/topic
  rate-limiter:
    enable: true
    topic-rate-limits:
      - topic: /test/a
        capacity: 9
        replenish-rate: 4
        token-consumed-per-acquire: 3
  auth:
    is-mandatory: false
    url: http://127.0.0.1:8080/mqttx/auth
    timeout: 5s
  sharable-payload:
    payload-key-prefix: "mqttx:sharable-payload:"
    unique-id-client-ids-set-prefix: "mqttx:unique-id:client-ids:"
    clean-work-interval: 1m
    threshold-in-message: 128

logging:
  level:
    root: info
`;

describe("a 1.2.3 configuration", () => {
  test("loads, with its values and the ignored keys listed", () => {
    const { config, ignored } = parseConfigReport(ORIGINAL, "application.yml");
    assert.equal(config.brokerId, "001");
    assert.equal(config.serializeStrategy, "KRYO");
    assert.equal(config.websocket.enable, true);
    assert.equal(config.auth.readTimeout, 5000); // auth.timeout
    assert.equal(config.rateLimiter.topicRateLimits[0].tokenConsumedPerAcquire, 3);
    assert.deepEqual(ignored, [
      "mqttx.http-client-connect-timeout",
      "mqttx.sys-topic.qos",
      "mqttx.sharable-payload",
    ]);
    const line = ignoredKeysLine(ignored)!;
    assert.ok(!line.includes("\n"));
    for (const k of ignored) assert.ok(line.includes(k), line);
    assert.equal(ignoredKeysLine([]), undefined);
  });

  test("starts, and the string broker id shows as written", async () => {
    const { config } = parseConfigReport(ORIGINAL, "application.yml");
    app = await startTestApp(config);
    assert.ok(app.app.ports.socket! > 0 && app.app.ports.websocket! > 0);
    // $SYS/broker/{broker-id}/status answers at once (sys-topic.enable is true above).
    const s = await connectRaw(app.app.ports.socket!);
    const got: Packet[] = [];
    const decoder = new PacketDecoder();
    s.on("data", (d: Uint8Array) => decoder.feed(new Uint8Array(d), (p) => got.push(p)));
    s.write(connectPacket("sys-reader"));
    s.write(bytesOf([{
      type: 8,
      packetId: 1,
      subscriptions: [{ topicFilter: "$SYS/broker/001/status", qos: 0 }],
    }], 4));
    for (let i = 0; i < 250 && !got.some((p) => p.type === 3); i++) await sleep(20);
    s.destroy();
    const pub = got.find((p) => p.type === 3) as { topic: string } | undefined;
    assert.equal(pub?.topic, "$SYS/broker/001/status");
  });

  test("keys in every relaxed spelling Spring accepts", () => {
    for (
      const key of [
        "max-bytes-in-message",
        "maxBytesInMessage",
        "MAX_BYTES_IN_MESSAGE",
        "max_bytes_in_message",
        "MaxBytesInMessage",
      ]
    ) {
      const { config } = parseConfigReport(`mqttx:\n  ${key}: 65536\n`, "c.yml");
      assert.equal(config.maxBytesInMessage, 65536, key);
    }
    for (const key of ["web-socket", "websocket", "webSocket", "WEB_SOCKET"]) {
      const { config } = parseConfigReport(`mqttx:\n  ${key}:\n    enable: true\n`, "c.yml");
      assert.equal(config.websocket.enable, true, key);
    }
    const { config, ignored } = parseConfigReport(
      "mqttx:\n  sharablePayload:\n    thresholdInMessage: 64\n  AUTH:\n    TIMEOUT: 2s\n",
      "c.yml",
    );
    assert.equal(config.auth.readTimeout, 2000);
    assert.deepEqual(ignored, ["mqttx.sharable-payload"]);
  });

  test("a numeric broker id keeps its written form", () => {
    assert.equal(parseConfigReport("mqttx:\n  broker-id: 007\n", "c.yml").config.brokerId, "007");
    assert.equal(parseConfigReport("mqttx:\n  broker-id: 2\n", "c.yml").config.brokerId, "2");
  });
});
