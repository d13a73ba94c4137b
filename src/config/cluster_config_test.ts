import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { ConfigError, parseConfig } from "./load.ts";

function refusal(text: string): ConfigError {
  try {
    parseConfig(text, "c.yml");
  } catch (e) {
    assert.ok(e instanceof ConfigError, String(e));
    return e;
  }
  assert.fail("accepted");
}

describe("cluster config", () => {
  test('broker-id: a number or a name such as "001", kept as written', () => {
    assert.equal(parseConfig("mqttx:\n  broker-id: 7\n", "c.yml").brokerId, "7");
    assert.equal(parseConfig('mqttx:\n  broker-id: "001"\n', "c.yml").brokerId, "001");
    assert.equal(parseConfig("mqttx:\n  broker-id: 001\n", "c.yml").brokerId, "001");
    assert.equal(parseConfig("mqttx:\n  broker-id: node-a\n", "c.yml").brokerId, "node-a");
    const e = refusal('mqttx:\n  broker-id: "a/b"\n');
    assert.equal(e.key, "mqttx.broker-id");
    assert.equal(e.line, 2);
  });

  test("a cluster in test mode is refused, naming the key and line", () => {
    const e = refusal("mqttx:\n  cluster:\n    enable: true\n");
    assert.equal(e.key, "mqttx.cluster.enable");
    assert.equal(e.line, 3);
    assert.match(e.message, /enable-test-mode: false/);
    const ok = parseConfig(
      "mqttx:\n  enable-test-mode: false\n  cluster:\n    enable: true\n",
      "c",
    );
    assert.equal(ok.cluster.enable, true);
    assert.equal(ok.cluster.heartbeatInterval, 1000);
    assert.equal(ok.cluster.nodeTimeout, 5000);
  });

  test("a cluster on a store other than Redis is refused (store.type wins over test mode)", () => {
    const base = "mqttx:\n  enable-test-mode: false\n  cluster:\n    enable: true\n";
    const e = refusal(base + "  store:\n    type: sqlite\n");
    assert.equal(e.key, "mqttx.cluster.enable");
    assert.equal(e.line, 4);
    assert.match(e.message, /Redis store/);
    const ok = parseConfig(
      "mqttx:\n  cluster:\n    enable: true\n  store:\n    type: redis\n",
      "c.yml",
    );
    assert.equal(ok.cluster.enable, true);
  });

  test("cluster.type kafka is refused (not built); node-timeout must exceed the heartbeat", () => {
    const base = "mqttx:\n  enable-test-mode: false\n  cluster:\n    enable: true\n";
    const kafka = refusal(base + "    type: kafka\n");
    assert.equal(kafka.key, "mqttx.cluster.type");
    assert.match(kafka.message, /not built yet/);
    const t = refusal(base + "    heartbeat-interval: 5s\n    node-timeout: 2s\n");
    assert.equal(t.key, "mqttx.cluster.node-timeout");
  });

  test("cluster.reuse-port: default false; refused without cluster.enable", () => {
    assert.equal(parseConfig("mqttx:\n  broker-id: 1\n", "c").cluster.reusePort, false);
    const e = refusal("mqttx:\n  cluster:\n    reuse-port: true\n");
    assert.equal(e.key, "mqttx.cluster.reuse-port");
    assert.equal(e.line, 3);
    assert.match(e.message, /cluster\.enable: true/);
    const ok = parseConfig(
      "mqttx:\n  enable-test-mode: false\n  cluster:\n    enable: true\n    reuse-port: true\n",
      "c",
    );
    assert.equal(ok.cluster.reusePort, true);
  });
});
