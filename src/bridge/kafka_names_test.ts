import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { defaultKafkaTopic, kafkaTopicFor, mqttTopicFor, TopicRoutes } from "./kafka_names.ts";

describe("Kafka topic names", () => {
  test("default: / becomes ., outer separators dropped, illegal characters become _", () => {
    assert.equal(defaultKafkaTopic("bridge/a"), "bridge.a");
    assert.equal(defaultKafkaTopic("/bridge/a/"), "bridge.a");
    assert.equal(defaultKafkaTopic("//x//"), "x");
    assert.equal(defaultKafkaTopic("a b/c:d/é"), "a_b.c_d._");
    assert.equal(defaultKafkaTopic("ok-1_x.y"), "ok-1_x.y");
    assert.equal(defaultKafkaTopic("/"), "_"); // nothing left: still a legal name
    assert.equal(defaultKafkaTopic("x".repeat(300)).length, 249);
  });

  test("templates: {topic} is the default name; a fixed name stays", () => {
    assert.equal(kafkaTopicFor("iot.{topic}", "plant/p1/t"), "iot.plant.p1.t");
    assert.equal(kafkaTopicFor("all", "a/b"), "all");
    assert.equal(kafkaTopicFor(undefined, "a/b"), "a.b");
  });

  test("Kafka → MQTT: {key} and {topic}; keys that cannot make a topic are refused", () => {
    assert.equal(mqttTopicFor("cmd/{key}", "commands", "dev1"), "cmd/dev1");
    assert.equal(mqttTopicFor("{topic}/{key}", "commands", "d"), "commands/d");
    assert.equal(mqttTopicFor("cmd/{key}", "c", "a/+"), undefined);
    assert.equal(mqttTopicFor("cmd/{key}", "c", "#"), undefined);
    assert.equal(mqttTopicFor("{key}", "c", "$SYS/x"), undefined);
    assert.equal(mqttTopicFor("{key}", "c", ""), undefined);
  });

  test("routes: first matching entry wins; filters with + and #", () => {
    const r = new TopicRoutes([
      { filter: "plant/+/t", kafkaTopic: "iot.{topic}" },
      { filter: "plant/#" },
    ], 2);
    assert.equal(r.kafkaTopic("plant/p1/t"), "iot.plant.p1.t");
    assert.equal(r.kafkaTopic("plant/p1/h"), "plant.p1.h");
    assert.equal(r.kafkaTopic("plant"), "plant");
    assert.equal(r.kafkaTopic("other/x"), undefined);
    assert.equal(r.kafkaTopic("other/x"), undefined); // remembered, and the memory is bounded
    assert.equal(r.kafkaTopic("plant/p1/t"), "iot.plant.p1.t");
  });
});
