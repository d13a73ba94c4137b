import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { createLogger } from "./logger.ts";
import { escapeForLog } from "./escape.ts";

const at = new Date("2026-01-02T03:04:05.678Z");

function capture(level: "error" | "warn" | "info" | "debug", format: "text" | "json") {
  const lines: string[] = [];
  const logger = createLogger({ level, format, write: (l) => lines.push(l), now: () => at });
  return { logger, lines };
}

describe("logger", () => {
  test("text: the msg as written, other fields escaped as key=value", () => {
    const { logger, lines } = capture("info", "text");
    logger.info("listening", { msg: "mqttx 1.0 listening on mqtt://0.0.0.0:1883" });
    logger.info("client.kicked", {
      clientId: "evil\n[error] forged\u001b[31m",
      address: "1.2.3.4:5",
    });
    assert.deepEqual(lines, [
      "mqttx 1.0 listening on mqtt://0.0.0.0:1883",
      "client.kicked clientId=evil\\n[error] forged\\x1b[31m address=1.2.3.4:5",
    ]);
  });

  test("json: one object per line with time, level, event and the fields", () => {
    const { logger, lines } = capture("debug", "json");
    logger.debug("client.connected", {
      clientId: "c\u0000\u009b1\u2028",
      address: "127.0.0.1:4000",
      protocolVersion: 5,
      username: undefined,
    });
    assert.equal(lines.length, 1);
    // deno-lint-ignore no-control-regex
    assert.ok(!/[\u0000-\u001f\u007f-\u009f\u2028\u2029]/.test(lines[0]), lines[0]);
    assert.deepEqual(JSON.parse(lines[0]), {
      time: "2026-01-02T03:04:05.678Z",
      level: "debug",
      event: "client.connected",
      clientId: "c\u0000\u009b1\u2028",
      address: "127.0.0.1:4000",
      protocolVersion: 5,
    });
  });

  test("level: lines below it are not written", () => {
    const { logger, lines } = capture("warn", "text");
    logger.debug("d");
    logger.info("i");
    logger.warn("w");
    logger.error("e");
    assert.deepEqual(lines, ["w", "e"]);
    assert.equal(logger.enabled("info"), false);
    assert.equal(logger.enabled("error"), true);
  });

  test("escapeForLog makes control characters visible", () => {
    assert.equal(escapeForLog("a\tb\r\nc\u007f\u2029"), "a\\tb\\r\\nc\\x7f\\u2029");
    assert.equal(escapeForLog("plain id-1/ü"), "plain id-1/ü");
  });
});
