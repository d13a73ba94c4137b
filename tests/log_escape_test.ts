/**
 * Client-supplied strings reach log lines escaped (a newline or an ANSI
 * escape in a client id must not forge or repaint a line), and every
 * connection the broker closes is logged with the client, address and reason.
 */
import { afterEach, describe, test } from "node:test";
import assert from "node:assert/strict";
import { escapeForLog } from "../src/log/escape.ts";
import { startTestApp, type TestApp } from "./helpers/certs.ts";
import { bytesOf, connectRaw, packetsUntilClose, sleep } from "./helpers/raw_socket.ts";

let app: TestApp | undefined;
afterEach(async () => {
  await app?.stop();
  app = undefined;
});

const T = { timeout: 30_000 };
const EVIL = "evil\nmqttx: forged line \x1b[31mred\x1b[0m";

describe("escapeForLog", () => {
  test("escapes newlines, ANSI escapes, other controls; leaves plain text alone", () => {
    assert.equal(escapeForLog("sensor-1/temp é"), "sensor-1/temp é");
    assert.equal(escapeForLog("a\nb\r\tc"), "a\\nb\\r\\tc");
    assert.equal(escapeForLog("\x1b[31mred"), "\\x1b[31mred");
    assert.equal(escapeForLog("nul\0 del\x7f c1\x9b"), "nul\\x00 del\\x7f c1\\x9b");
    assert.equal(escapeForLog("a\u2028b\u202e"), "a\\u2028b\\u202e");
    assert.equal(escapeForLog("back\\slash"), "back\\\\slash");
  });
});

describe("close reasons in the log", () => {
  test("a client id with a newline and an ANSI escape is logged escaped", T, async () => {
    app = await startTestApp({ maxInflight: 1 });
    const s = await connectRaw(app.app.ports.socket!);
    const done = packetsUntilClose(s, 5);
    s.write(bytesOf([
      {
        type: 1,
        protocolName: "MQTT",
        protocolVersion: 5,
        clean: true,
        keepAlive: 0,
        clientId: EVIL,
      },
      ...[1, 2].map((packetId) => ({
        type: 3 as const,
        topic: "t",
        payload: new Uint8Array(1),
        qos: 2 as const,
        retain: false,
        dup: false,
        packetId,
      })),
    ], 5));
    await done;
    const lines = app.log.join("\n").split("\n");
    assert.ok(!lines.some((l) => l.startsWith("mqttx: forged")), lines.join("\n"));
    assert.ok(!lines.some((l) => l.includes("\x1b")), "an ANSI escape reached the log");
    const line = lines.find((l) => l.includes("ReceiveMaximumExceeded"));
    assert.ok(line, `no close reason logged:\n${lines.join("\n")}`);
    assert.ok(line.includes(escapeForLog(EVIL)), line);
    assert.match(line, /127\.0\.0\.1:\d+/);
  });

  test("a connection whose first packet is not CONNECT is logged with its reason", T, async () => {
    app = await startTestApp({});
    const s = await connectRaw(app.app.ports.socket!);
    const done = packetsUntilClose(s, 4);
    s.write(Uint8Array.of(0xc0, 0x00)); // PINGREQ
    await done;
    for (let i = 0; i < 50 && !app.log.some((l) => l.includes("not CONNECT")); i++) await sleep(20);
    assert.ok(
      app.log.some((l) => /closing 127\.0\.0\.1:\d+: .*not CONNECT/.test(l)),
      app.log.join("\n"),
    );
  });

  test("a protocol name with control characters is logged escaped", T, async () => {
    app = await startTestApp({});
    const s = await connectRaw(app.app.ports.socket!);
    const done = packetsUntilClose(s, 4);
    const name = new TextEncoder().encode("MQ\nTT\x1b[2J");
    s.write(Uint8Array.of(0x10, 2 + name.length + 4, 0, name.length, ...name, 4, 2, 0, 0));
    await done;
    for (let i = 0; i < 50 && !app.log.some((l) => l.includes("protocol name")); i++) {
      await sleep(20);
    }
    const line = app.log.find((l) => l.includes("protocol name"));
    assert.ok(line, app.log.join("\n"));
    assert.ok(!line.includes("\n") && !line.includes("\x1b"), line);
  });
});
