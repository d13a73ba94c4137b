/**
 * log.format json / log.level on a running broker: every line is one JSON
 * object; at debug, client connects and disconnects carry the client id and
 * address; at warn, the start lines are gone.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { useOpsApp } from "./helpers/ops.ts";
import { uid, withTimeout } from "./helpers/mqttjs.ts";

const { clients, start } = useOpsApp();

test("json lines with time, level, event, client id and address", { timeout: 30_000 }, async () => {
  const app = await start({ log: { level: "debug", format: "json" } });
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
  const app = await start({ log: { level: "warn", format: "text" } });
  assert.deepEqual(app.log, []);
});
