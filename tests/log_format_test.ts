/**
 * log.format json / log.level on a running broker: every line is one JSON
 * object; at debug, client connects and disconnects carry the client id and
 * address; at warn, the start lines are gone.
 */
import { afterEach, test } from "node:test";
import assert from "node:assert/strict";
import { startTestApp, type TestApp } from "./helpers/certs.ts";
import { Clients, uid, withTimeout } from "./helpers/mqttjs.ts";

let app: TestApp | undefined;
let url = "";
const clients = new Clients(() => url);

afterEach(async () => {
  await clients.closeAll();
  await app?.stop();
  app = undefined;
});

test("json lines with time, level, event, client id and address", { timeout: 30_000 }, async () => {
  app = await startTestApp({ log: { level: "debug", format: "json" } });
  url = `mqtt://127.0.0.1:${app.app.ports.socket}`;
  const id = `json-${uid()}`;
  const c = await clients.connect({ clientId: id, username: "u1" });
  await new Promise<void>((done) => c.client.end(false, () => done()));
  const log = app.log;
  await withTimeout(
    (async () => {
      while (!log.some((l) => l.includes("client.disconnected"))) {
        await new Promise((r) => setTimeout(r, 20));
      }
    })(),
    "the disconnect line",
  );
  const records = log.map((l) => JSON.parse(l));
  for (const r of records) {
    assert.match(r.time, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    assert.ok(["error", "warn", "info", "debug"].includes(r.level));
    assert.equal(typeof r.event, "string");
  }
  assert.ok(records.some((r) => r.event === "listening" && r.level === "info"));
  const connected = records.find((r) => r.event === "client.connected");
  assert.equal(connected.clientId, id);
  assert.equal(connected.username, "u1");
  assert.equal(connected.protocolVersion, 4);
  assert.match(connected.address, /^127\.0\.0\.1:\d+$/);
});

test("log.level warn leaves out the info lines", { timeout: 30_000 }, async () => {
  app = await startTestApp({ log: { level: "warn", format: "text" } });
  assert.deepEqual(app.log, []);
});
