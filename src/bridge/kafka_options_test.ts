import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { defaultConfig } from "../config/schema.ts";
import { connectionOptions } from "./kafka.ts";

describe("Kafka connection options", () => {
  const files: Record<string, string> = { "ca.pem": "CA", "c.pem": "CERT", "c.key": "KEY" };
  const read = (p: string) => Promise.resolve(files[p] ?? `missing ${p}`);

  test("plain by default: no TLS, no SASL", async () => {
    const c = { ...defaultConfig().messageBridge, kafkaBrokers: ["k1:9092", "k2:9092"] };
    assert.deepEqual(await connectionOptions(c, read), {
      clientId: "mqttx",
      brokers: ["k1:9092", "k2:9092"],
      ssl: undefined,
      sasl: undefined,
    });
  });

  test("TLS with PEM files read, and SASL SCRAM", async () => {
    const c = {
      ...defaultConfig().messageBridge,
      kafkaBrokers: ["k:9093"],
      clientId: "edge-7",
      tls: {
        enable: true,
        caFile: "ca.pem",
        certFile: "c.pem",
        keyFile: "c.key",
        rejectUnauthorized: false,
      },
      sasl: { mechanism: "scram-sha-512" as const, username: "u", password: "p" },
    };
    assert.deepEqual(await connectionOptions(c, read), {
      clientId: "edge-7",
      brokers: ["k:9093"],
      ssl: { ca: ["CA"], cert: "CERT", key: "KEY", rejectUnauthorized: false },
      sasl: { mechanism: "scram-sha-512", username: "u", password: "p" },
    });
  });
});
