/**
 * Start-up errors say what is wrong and where: a port in use names the
 * listener type, host and port; a plain-text password names its line.
 */
import { afterEach, describe, test } from "node:test";
import assert from "node:assert/strict";
import * as net from "node:net";
import { ConfigError, parseConfig } from "../src/config/load.ts";
import { startTestApp, type TestApp } from "./helpers/certs.ts";

const apps: TestApp[] = [];
let blocker: net.Server | undefined;
afterEach(async () => {
  for (const a of apps.splice(0)) await a.stop();
  await new Promise<void>((r) => blocker ? blocker.close(() => r()) : r());
  blocker = undefined;
});

/** A port held by another program (a plain node:net server). */
function holdPort(): Promise<number> {
  return new Promise((resolve) => {
    blocker = net.createServer(() => {});
    blocker.listen(0, "127.0.0.1", () => resolve((blocker!.address() as net.AddressInfo).port));
  });
}

describe("port in use", () => {
  for (const type of ["tcp", "ws"] as const) {
    test(`a ${type} listener names its type, host and port`, async () => {
      const port = await holdPort();
      const over = type === "tcp"
        ? { socket: { enable: true, port } }
        : { websocket: { enable: true, port, path: "/mqtt" } };
      await assert.rejects(
        startTestApp(over).then((a) => apps.push(a)),
        (e: Error) => {
          assert.match(e.message, new RegExp(`\\b${type}\\b`), e.message);
          assert.ok(e.message.includes(`127.0.0.1:${port}`), e.message);
          assert.match(e.message, /in use/i, e.message);
          return true;
        },
      );
    });
  }
});

describe("auth.users with a plain-text password", () => {
  test("is refused with its line", () => {
    const text = "mqttx:\n  auth:\n    users:\n      - username: alice\n        password: secret\n";
    assert.throws(() => parseConfig(text, "c.yml"), (e: unknown) => {
      assert.ok(e instanceof ConfigError, String(e));
      assert.equal(e.line, 5, e.message);
      assert.match(e.message, /^c\.yml:5: mqttx\.auth\.users\[0\]\.password: .*SCRAM-SHA-256/);
      return true;
    });
  });
});
