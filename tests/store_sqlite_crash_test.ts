/**
 * The SQLite store with mqttx as a real process killed with SIGKILL:
 * acknowledged retained messages are kept; a bridge's queue, filled while its
 * upstream (a real Mosquitto) is down, still reaches the upstream, in order,
 * after the restart. (Persistent sessions across kill -9 on SQLite:
 * tests/durable_kill_test.ts.)
 */
import { afterEach, describe, test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { mustRun } from "./helpers/harness.ts";
import { Clients, publish, subscribe } from "./helpers/mqttjs.ts";
import { bridgeQueueSurvivesKill } from "./helpers/bridge_kill.ts";
import { BrokerProcess } from "./helpers/broker_process.ts";
import { mosquittoAvailable, startUpstream, type Upstream } from "./helpers/upstream_mosquitto.ts";

const T = {
  timeout: 120_000,
  skip: !mosquittoAvailable() && !mustRun() ? "mosquitto not on PATH" : false,
};

let mqttx: BrokerProcess | undefined;
let upstream: Upstream | undefined;
let url = "";
const clients = new Clients(() => url);

afterEach(async () => {
  await clients.closeAll();
  await mqttx?.dispose();
  mqttx = undefined;
  await upstream?.remove();
  upstream = undefined;
});

/** A broker process on the SQLite store (mqttx.db beside its config file). */
function sqliteBroker(extra = ""): BrokerProcess {
  mqttx = new BrokerProcess(
    "host: 127.0.0.1\nsocket:\n  port: 0\nstore:\n  type: sqlite\n" + extra,
  );
  return mqttx;
}

async function start(b: BrokerProcess): Promise<void> {
  url = `mqtt://127.0.0.1:${await b.start()}`;
}

describe("SQLite store across kill -9", () => {
  test("acknowledged retained messages are kept (file beside the config)", T, async () => {
    const b = sqliteBroker();
    await start(b);
    assert.match(b.output, /SQLite store .*mqttx\.db/);
    const pub = await clients.connect();
    for (let i = 0; i < 50; i++) {
      await publish(pub.client, `r/${i}`, `v${i}`, { qos: (1 + (i % 2)) as 1 | 2, retain: true });
    }
    await publish(pub.client, "r/0", "", { qos: 1, retain: true }); // cleared
    await b.kill("SIGKILL");
    await clients.closeAll();
    assert.ok(fs.existsSync(path.join(b.dir, "mqttx.db")));
    await start(b);
    const sub = await clients.connect();
    await subscribe(sub.client, "r/#", { qos: 1 });
    const got = await sub.inbox.count(49, 10_000);
    assert.deepEqual(
      got.map((m) => m.payload).sort(),
      Array.from({ length: 49 }, (_, i) => `v${i + 1}`).sort(),
    );
    assert.ok(got.every((m) => m.retain));
  });

  test("a bridge's queue survives kill -9 while the upstream is down", T, async () => {
    upstream = await startUpstream();
    await bridgeQueueSurvivesKill(upstream, "store:\n  type: sqlite\n", (b) => (mqttx = b));
  });
});
