// `bridges:` and `store:` in the config file: defaults, every key, refusals naming key and line.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { ConfigError, parseConfig } from "../src/config/load.ts";
import { storeType } from "../src/config/types.ts";

function refuses(text: string, key: string, line: number, reason: RegExp) {
  assert.throws(() => parseConfig(text, "c.yml"), (e: unknown) => {
    assert.ok(e instanceof ConfigError, `not a ConfigError: ${e}`);
    assert.equal(e.key, key, e.message);
    assert.equal(e.line, line, e.message);
    assert.match(e.message, reason);
    return true;
  });
}

describe("config: bridges", () => {
  test("defaults and every key", () => {
    const c = parseConfig(
      `bridges:
  - name: cloud
    url: mqtt://broker.example.com:1883
    topics:
      - filter: "sensors/#"
  - name: tls-up
    url: mqtts://broker.example.com
    client-id: gw-7
    username: u
    password: p
    ca-file: /etc/ca.pem
    cert-file: /etc/c.pem
    key-file: /etc/k.pem
    protocol-version: 4
    keepalive: 30
    clean-start: true
    queue-max: 500
    reconnect-delay: 2s
    reconnect-max-delay: 1m
    topics:
      - { filter: "#", direction: both, qos: 1, local-prefix: "edge/", remote-prefix: "site/7/" }
`,
      "c.yml",
    );
    assert.deepEqual(c.bridges[0], {
      name: "cloud",
      url: "mqtt://broker.example.com:1883",
      protocolVersion: 5,
      keepalive: 60,
      cleanStart: false,
      queueMax: 100_000,
      reconnectDelay: 1000,
      reconnectMaxDelay: 30_000,
      topics: [{
        filter: "sensors/#",
        direction: "out",
        qos: 2,
        localPrefix: "",
        remotePrefix: "",
      }],
    });
    const b = c.bridges[1];
    assert.equal(b.clientId, "gw-7");
    assert.equal(b.caFile, "/etc/ca.pem");
    assert.equal(b.protocolVersion, 4);
    assert.equal(b.cleanStart, true);
    assert.equal(b.queueMax, 500);
    assert.equal(b.reconnectDelay, 2000);
    assert.equal(b.reconnectMaxDelay, 60_000);
    assert.deepEqual(b.topics[0], {
      filter: "#",
      direction: "both",
      qos: 1,
      localPrefix: "edge/",
      remotePrefix: "site/7/",
    });
  });

  test("refusals name the key and the line", () => {
    const one = (body: string) => `bridges:\n  - name: a\n${body}`;
    refuses(
      one("    url: http://x\n    topics: [{ filter: a }]\n"),
      "mqttx.bridges[0].url",
      3,
      /mqtt, mqtts, ws, wss/,
    );
    refuses(one("    url: mqtt://x\n"), "mqttx.bridges[0]", 2, /missing required key `topics`/);
    refuses(
      one("    url: mqtt://x\n    protocol-version: 3\n    topics: [{ filter: a }]\n"),
      "mqttx.bridges[0].protocol-version",
      4,
      /from 4 to 5/,
    );
    refuses(
      one("    url: mqtt://x\n    topics:\n      - filter: a\n        direction: sideways\n"),
      "mqttx.bridges[0].topics[0].direction",
      6,
      /out, in, both/,
    );
    refuses(
      one("    url: mqtt://x\n    topics:\n      - filter: a/#\n        local-prefix: x/+/\n"),
      "mqttx.bridges[0].topics[0].local-prefix",
      6,
      /may not contain/,
    );
    refuses(
      one('    url: mqtt://x\n    topics:\n      - filter: "#"\n        remote-prefix: up\n'),
      "mqttx.bridges[0].topics[0].remote-prefix",
      6,
      /remote-prefix \+ filter "up#".*ends with '\/'/,
    );
    refuses(
      one("    url: mqtt://x\n    cert-file: c.pem\n    topics: [{ filter: a }]\n"),
      "mqttx.bridges[0].key-file",
      4,
      /`cert-file` is set, so `key-file` is needed too/,
    );
    refuses(
      one(
        "    url: mqtt://x\n    topics: [{ filter: a }]\n  - name: a\n    url: mqtt://y\n    topics: [{ filter: b }]\n",
      ),
      "mqttx.bridges[1].name",
      5,
      /duplicate bridge name "a"/,
    );
    refuses(
      "bridges:\n  - name: a/b\n    url: mqtt://x\n    topics: [{ filter: a }]\n",
      "mqttx.bridges[0].name",
      2,
      /letters, digits/,
    );
  });
});

describe("config: store", () => {
  test("type, path beside the config file, synchronous; without type enable-test-mode decides", () => {
    const c = parseConfig("store:\n  type: sqlite\n  synchronous: normal\n", "/etc/mqttx/c.yml");
    assert.equal(c.store.type, "sqlite");
    assert.equal(c.store.path, "/etc/mqttx/mqttx.db");
    assert.equal(c.store.synchronous, "normal");
    assert.equal(storeType(c), "sqlite");
    assert.equal(
      parseConfig("store:\n  path: /var/lib/m.db\n", "/etc/c.yml").store.path,
      "/var/lib/m.db",
    );
    assert.equal(
      parseConfig("store:\n  path: data/m.db\n", "/etc/c.yml").store.path,
      "/etc/data/m.db",
    );
    assert.equal(storeType(parseConfig("enable-test-mode: true\n", "c.yml")), "memory");
    assert.equal(storeType(parseConfig("enable-test-mode: false\n", "c.yml")), "redis");
    assert.equal(
      storeType(parseConfig("enable-test-mode: false\nstore:\n  type: sqlite\n", "c.yml")),
      "sqlite",
    );
    refuses("store:\n  type: file\n", "mqttx.store.type", 2, /memory, sqlite, redis/);
  });
});
