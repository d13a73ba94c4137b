import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { ConfigError, parseConfig } from "./load.ts";
import { defaultConfig } from "./schema.ts";

/** Asserts `text` is refused with the given key path, line and reason. */
function refuses(text: string, key: string | undefined, line: number, reason: RegExp) {
  assert.throws(() => parseConfig(text, "config.yml"), (e: unknown) => {
    assert.ok(e instanceof ConfigError, `not a ConfigError: ${e}`);
    assert.equal(e.key, key, e.message);
    assert.equal(e.line, line, e.message);
    assert.equal(e.file, "config.yml");
    assert.ok(e.message.startsWith(`config.yml:${line}:`), e.message);
    if (key !== undefined) assert.ok(e.message.includes(key), e.message);
    assert.match(e.message, reason);
    return true;
  });
}

describe("parseConfig: what loads", () => {
  test("an empty file, comments only, or an empty mqttx key gives the defaults", () => {
    // (An unknown top-level key instead is refused: see "a misspelled root key".)
    for (const text of ["", "# nothing\n", "mqttx:\n"]) {
      assert.deepEqual(parseConfig(text, "c.yml"), defaultConfig(), JSON.stringify(text));
    }
  });

  test("kebab-case keys", () => {
    const c = parseConfig(
      `mqttx:
  broker-id: 7
  so-backlog: 64
  enable-test-mode: false
  max-bytes-in-message: 65536
  socket:
    port: 1884
  share-topic:
    share-sub-strategy: hash
  sys-topic:
    interval: 5m
  web-socket:
    enable: true
  redis:
    cluster-session-hash-key: "s:k"
`,
      "c.yml",
    );
    assert.equal(c.brokerId, "7");
    assert.equal(c.soBacklog, 64);
    assert.equal(c.enableTestMode, false);
    assert.equal(c.maxBytesInMessage, 65536);
    assert.equal(c.socket.port, 1884);
    assert.equal(c.socket.enable, true); // untouched sibling keeps its default
    assert.equal(c.shareTopic.shareSubStrategy, "hash");
    assert.equal(c.sysTopic.interval, 300_000);
    assert.equal(c.websocket.enable, true);
    assert.equal(c.redis.clusterSessionHashKey, "s:k");
  });

  test("camelCase keys, and every spelling of websocket", () => {
    const c = parseConfig(
      "mqttx:\n  brokerId: 3\n  soBacklog: 9\n  shareTopic: {shareSubStrategy: random}\n" +
        "  maxInflight: 5\n  messageBridge: {enable: true, topics: [a/b], kafkaBrokers: [k:9092]}\n",
      "c.yml",
    );
    assert.equal(c.brokerId, "3");
    assert.equal(c.soBacklog, 9);
    assert.equal(c.shareTopic.shareSubStrategy, "random");
    assert.equal(c.maxInflight, 5);
    assert.equal(c.messageBridge.enable, true);
    assert.deepEqual(c.messageBridge.topics, [{ topic: "a/b" }]);
    assert.deepEqual(c.messageBridge.kafkaBrokers, ["k:9092"]);
    for (const spelling of ["websocket", "webSocket", "web-socket"]) {
      const w = parseConfig(`mqttx:\n  ${spelling}:\n    port: 9001\n`, "c.yml");
      assert.equal(w.websocket.port, 9001, spelling);
    }
  });

  test("an old Spring application.yml with spring:, server: and logging: loads", () => {
    const c = parseConfig(
      `spring:
  application:
    name: mqttx
  redis:
    host: localhost
server:
  port: 8080
logging:
  level:
    root: info
mqttx:
  version: 1.10
  heartbeat: PT30S
  enable-test-mode: false
  ssl:
    key-store-location:
    key-store-password: 654321
    client-auth: true
`,
      "application.yml",
    );
    assert.equal(c.version, "1.10"); // as written, not the number 1.1
    assert.equal(c.heartbeat, 30_000);
    assert.equal(c.enableTestMode, false);
    assert.equal(c.ssl.keyStoreLocation, "classpath:tls/mqttx.keystore"); // empty keeps default
    assert.equal(c.ssl.keyStorePassword, "654321");
    assert.equal(c.ssl.clientAuth, "REQUIRE");
    assert.equal(c.socket.port, 1883); // server.port is Spring's, not ours
  });

  test("without mqttx:, top-level mqttx items are read (foreign keys still ignored)", () => {
    const c = parseConfig("enable-test-mode: true\nspring: {a: 1}\nsocket:\n  port: 0\n", "c.yml");
    assert.equal(c.socket.port, 0);
    refuses("socket:\n  port: 1\nsoket: {}\n", "mqttx.soket", 3, /did you mean `socket`\?/);
  });

  test("client-auth, enums and booleans are case-insensitive", () => {
    const auth = (v: string) =>
      parseConfig(`mqttx:\n  ssl:\n    client-auth: ${v}\n`, "c.yml").ssl.clientAuth;
    assert.equal(auth("false"), "NONE");
    assert.equal(auth("optional"), "OPTIONAL");
    assert.equal(auth("Require"), "REQUIRE");
    const c = parseConfig(
      "mqttx:\n  serialize-strategy: kryo\n  cluster: {type: KAFKA}\n  enable-inner-cache: FALSE\n",
      "c.yml",
    );
    assert.equal(c.serializeStrategy, "KRYO");
    assert.equal(c.cluster.type, "kafka");
    assert.equal(c.enableInnerCache, false);
  });

  test("rate limits, optional PEM files, auth url and durations", () => {
    const c = parseConfig(
      `mqttx:
  rate-limiter:
    enable: true
    topic-rate-limits:
      - topic: a/b
        capacity: 10
        replenish-rate: 2
      - {topic: c, capacity: 1, replenishRate: 1, tokenConsumedPerAcquire: 1}
  ssl: {cert-file: s.crt, key-file: s.key}
  auth: {url: "http://127.0.0.1:9/auth", read-timeout: 500ms, connect-timeout: 2}
  message-bridge: {topics: "a, b/c"}
`,
      "c.yml",
    );
    assert.deepEqual(c.rateLimiter.topicRateLimits, [
      { topic: "a/b", capacity: 10, replenishRate: 2, tokenConsumedPerAcquire: 1 },
      { topic: "c", capacity: 1, replenishRate: 1, tokenConsumedPerAcquire: 1 },
    ]);
    assert.equal(c.ssl.certFile, "s.crt");
    assert.equal(c.ssl.keyFile, "s.key");
    assert.equal(c.ssl.caFile, undefined);
    assert.equal(c.auth.url, "http://127.0.0.1:9/auth");
    assert.equal(c.auth.readTimeout, 500);
    assert.equal(c.auth.connectTimeout, 2_000);
    // Spring's comma form
    assert.deepEqual(c.messageBridge.topics, [{ topic: "a" }, { topic: "b/c" }]);
  });

  test("port 0 (ephemeral) and 65535 are accepted", () => {
    assert.equal(parseConfig("mqttx:\n  socket: {port: 0}\n", "c.yml").socket.port, 0);
    assert.equal(parseConfig("mqttx:\n  socket: {port: 65535}\n", "c.yml").socket.port, 65535);
  });
});

describe("parseConfig: what is refused", () => {
  test("YAML syntax error, with the parser's line", () => {
    refuses("mqttx:\n  socket:\n    port: 1: 2\n  host: x\n", undefined, 3, /YAML syntax error/);
    refuses("mqttx:\n  a: 1\n  a: 2\n", undefined, 3, /YAML syntax error.*[Uu]nique/);
  });

  test("unknown key, suggesting the closest known one", () => {
    refuses(
      "mqttx:\n  socket:\n    prot: 1883\n",
      "mqttx.socket.prot",
      3,
      /unknown key `prot`; did you mean `port`\?/,
    );
    refuses(
      "mqttx:\n  brokerid: 1\n  enable-tset-mode: true\n",
      "mqttx.enable-tset-mode",
      3,
      /did you mean `enable-test-mode`\?/,
    );
    refuses(
      "mqttx:\n  port: 1883\n",
      "mqttx.port",
      2,
      /did you mean `socket.port` or `websocket.port` or `http.port`\?/,
    );
    refuses(
      "mqttx:\n  zzzzzz: 1\n",
      "mqttx.zzzzzz",
      2,
      /unknown key `zzzzzz` \(known keys under mqttx: version, /,
    );
  });

  test("wrong type", () => {
    refuses(
      "# comment\nmqttx:\n  host: 0.0.0.0\n\n  socket:\n    enable: true\n    port: abc\n",
      "mqttx.socket.port",
      7,
      /expected an integer from 0 to 65535, got "abc"/,
    );
    refuses(
      "mqttx:\n  socket:\n    port: 65536\n",
      "mqttx.socket.port",
      3,
      /from 0 to 65535, got 65536/,
    );
    refuses("mqttx:\n  socket:\n    port: 1.5\n", "mqttx.socket.port", 3, /got 1\.5/);
    refuses("mqttx:\n  max-inflight: 0\n", "mqttx.max-inflight", 2, /from 1 to 65535/);
    refuses(
      "mqttx:\n  enable-test-mode: yes\n",
      "mqttx.enable-test-mode",
      2,
      /expected true or false, got "yes"/,
    );
    refuses("mqttx:\n  socket: 1883\n", "mqttx.socket", 2, /expected a mapping/);
    refuses("mqttx:\n  host: [a]\n", "mqttx.host", 2, /expected a string, got a list/);
    refuses("mqttx: 5\n", "mqttx", 1, /expected a mapping/);
    refuses("- a\n", undefined, 1, /expected a mapping at the top level/);
  });

  test("bad duration", () => {
    refuses("mqttx:\n  heartbeat: 60x\n", "mqttx.heartbeat", 2, /expected a duration .* got "60x"/);
    refuses(
      "mqttx:\n  sys-topic:\n    interval: 0\n",
      "mqttx.sys-topic.interval",
      3,
      /greater than 0/,
    );
  });

  test("bad enum value", () => {
    refuses(
      "mqttx:\n  share-topic:\n    share-sub-strategy: fastest\n",
      "mqttx.share-topic.share-sub-strategy",
      3,
      /expected one of round, random, hash, got "fastest"/,
    );
    refuses(
      "mqttx:\n  ssl:\n    client-auth: maybe\n",
      "mqttx.ssl.client-auth",
      3,
      /NONE, OPTIONAL, REQUIRE, true, false/,
    );
    refuses("mqttx:\n  serialize-strategy: xml\n", "mqttx.serialize-strategy", 2, /JSON, KRYO/);
  });

  test("bridge topics: filters, strings or mappings with a Kafka topic template", () => {
    const c = parseConfig(
      "mqttx:\n  message-bridge:\n    topics:\n      - a/+/t\n" +
        '      - {topic: plant/#, kafka-topic: "iot.{topic}"}\n' +
        '    from-kafka:\n      - {kafka-topic: cmd, mqtt-topic: "cmd/{key}", qos: 1}\n',
      "c.yml",
    );
    assert.deepEqual(c.messageBridge.topics, [
      { topic: "a/+/t" },
      { topic: "plant/#", kafkaTopic: "iot.{topic}" },
    ]);
    assert.deepEqual(c.messageBridge.fromKafka, [
      { kafkaTopic: "cmd", mqttTopic: "cmd/{key}", qos: 1, retain: false },
    ]);
    refuses(
      "mqttx:\n  message-bridge:\n    topics:\n      - a/b\n      - a/#/b\n",
      "mqttx.message-bridge.topics[1]",
      5,
      /"a\/#\/b"/,
    );
    refuses(
      'mqttx:\n  message-bridge:\n    from-kafka:\n      - {kafka-topic: c, mqtt-topic: "c/+"}\n',
      "mqttx.message-bridge.from-kafka[0].mqtt-topic",
      4,
      /wildcard/,
    );
    refuses(
      "mqttx:\n  message-bridge:\n    enable: true\n",
      "mqttx.message-bridge.kafka-brokers",
      3,
      /at least one Kafka broker/,
    );
    refuses(
      "mqttx:\n  message-bridge:\n    kafka-brokers: [localhost]\n",
      "mqttx.message-bridge.kafka-brokers[0]",
      3,
      /host:port/,
    );
  });

  test("rate limits need positive integers and their required keys", () => {
    const head = "mqttx:\n  rate-limiter:\n    topic-rate-limits:\n";
    refuses(
      head + "      - topic: a\n        capacity: -1\n        replenish-rate: 1\n",
      "mqttx.rate-limiter.topic-rate-limits[0].capacity",
      5,
      /expected an integer of at least 1, got -1/,
    );
    refuses(
      head + "      - topic: a\n        capacity: 1\n",
      "mqttx.rate-limiter.topic-rate-limits[0]",
      4,
      /missing required key `replenish-rate`/,
    );
    refuses(
      head + "      - 5\n",
      "mqttx.rate-limiter.topic-rate-limits[0]",
      4,
      /expected a mapping/,
    );
  });

  test("other value checks", () => {
    refuses(
      "mqttx:\n  brokerId: 1\n  broker-id: 2\n",
      "mqttx.broker-id",
      3,
      /duplicate key \(also written as `brokerId`\)/,
    );
    refuses(
      "mqttx:\n  redis:\n    url: http://x\n",
      "mqttx.redis.url",
      3,
      /redis:\/\/127\.0\.0\.1:6379/,
    );
    refuses(
      "mqttx:\n  websocket:\n    path: mqtt\n",
      "mqttx.websocket.path",
      3,
      /starting with "\/"/,
    );
    refuses(
      "mqttx:\n  ssl:\n    enable: true\n    key-file: k.pem\n",
      "mqttx.ssl.cert-file",
      4,
      /`cert-file` is needed/,
    );
  });

  test("with TLS on: a key store type we cannot read, client-auth without a CA", () => {
    refuses(
      "mqttx:\n  ssl:\n    enable: true\n    key-store-type: jks\n",
      "mqttx.ssl.key-store-type",
      4,
      /jks key stores are not supported; use pkcs12/,
    );
    refuses(
      "mqttx:\n  ssl:\n    enable: true\n    cert-file: s.crt\n    key-file: s.key\n" +
        "    client-auth: true\n",
      "mqttx.ssl.ca-file",
      6,
      /client-auth REQUIRE needs the CA/,
    );
    // Unused without a TLS listener (the original's files often carry them), or with PEM files.
    parseConfig("mqttx:\n  ssl:\n    key-store-type: jks\n    client-auth: true\n", "c.yml");
    parseConfig(
      "mqttx:\n  ssl:\n    enable: true\n    key-store-type: jks\n    cert-file: a\n" +
        "    key-file: b\n",
      "c.yml",
    );
  });

  test("the message reads file:line: key: reason", () => {
    try {
      parseConfig("mqttx:\n  socket:\n    port: abc\n", "config.yml");
      assert.fail("accepted");
    } catch (e) {
      assert.ok(e instanceof ConfigError);
      assert.equal(
        e.message,
        'config.yml:3: mqttx.socket.port: expected an integer from 0 to 65535, got "abc"',
      );
    }
  });
});

test("a misspelled root key is refused, not loaded as the defaults", () => {
  assert.throws(
    () => parseConfig("mqtx:\n  auth:\n    allow-anonymous: false\n", "c.yml"),
    (e: unknown) =>
      e instanceof ConfigError && e.line === 1 && /mqtx/.test(e.message) &&
      /under `mqttx:`/.test(e.message),
  );
  // Spring's own keys alone are still fine.
  assert.deepEqual(parseConfig("spring:\n  application:\n    name: x\n", "c.yml"), defaultConfig());
});
