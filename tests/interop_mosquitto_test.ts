/**
 * Interop: the mosquitto command-line clients (mosquitto_sub / mosquitto_pub,
 * MQTT 3.1, 3.1.1 and 5.0) against the broker on a real loopback socket, and
 * across to MQTT.js. Skipped when the clients are not installed, unless
 * MQTTX_REQUIRE_INTEGRATION=1 (then they fail).
 */
import { after, afterEach, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mustRun, startBroker, type TestBroker } from "./helpers/harness.ts";
import { Clients, publish, subscribe, uid } from "./helpers/mqttjs.ts";
import {
  FORMAT,
  hostArgs,
  mosquittoClientsAvailable,
  parseSub,
  Procs,
  publishUntilReceived,
} from "./helpers/mosquitto.ts";

const available = mosquittoClientsAvailable();
/** Skip without the clients, unless integration tests are required (then run and fail). */
const OPTS = {
  timeout: 20_000,
  skip: !available && !mustRun() ? "mosquitto_sub/mosquitto_pub not on PATH" : false,
};

let broker: TestBroker;
const procs = new Procs();
const clients = new Clients(() => broker.url);

before(async () => {
  broker = await startBroker();
});

afterEach(async () => {
  await procs.killAll();
  await clients.closeAll();
});

after(async () => {
  await procs.killAll();
  await clients.closeAll();
  await broker?.stop();
});

function requireClients(): void {
  assert.ok(available, "mosquitto_sub and mosquitto_pub must be on PATH");
}

function topic(name: string): string {
  return `mqttx-mosq/${uid()}/${name}`;
}

/** `mosquitto_sub` printing FORMAT lines, exiting after `count` messages. */
function sub(t: string, count: number, extra: string[] = []) {
  return procs.start("mosquitto_sub", [
    ...hostArgs(broker),
    "-t",
    t,
    "-C",
    String(count),
    "-F",
    FORMAT,
    ...extra,
  ]);
}

function pubArgs(t: string, message: string, extra: string[] = []): string[] {
  return [...hostArgs(broker), "-t", t, "-m", message, ...extra];
}

const VERSIONS = [
  { flag: "mqttv31", name: "MQTT 3.1" },
  { flag: "mqttv311", name: "MQTT 3.1.1" },
  { flag: "mqttv5", name: "MQTT 5.0" },
];

for (const { flag, name } of VERSIONS) {
  describe(`mosquitto clients ${name}`, () => {
    const V = ["-V", flag];

    for (const q of [0, 1, 2]) {
      test(`mosquitto_sub receives mosquitto_pub at QoS ${q}`, OPTS, async () => {
        requireClients();
        const t = topic(`q${q}`);
        const s = sub(t, 1, ["-q", String(q), ...V]);
        const lines = await publishUntilReceived(
          procs,
          s,
          pubArgs(t, `hello-q${q}`, ["-q", String(q), ...V]),
        );
        assert.deepEqual(lines, [{ topic: t, qos: q, retain: false, payload: `hello-q${q}` }]);
      });
    }

    test("QoS is downgraded to the subscription's", OPTS, async () => {
      requireClients();
      const t = topic("downgrade");
      const s = sub(t, 1, ["-q", "1", ...V]);
      const lines = await publishUntilReceived(procs, s, pubArgs(t, "two", ["-q", "2", ...V]));
      assert.deepEqual(lines, [{ topic: t, qos: 1, retain: false, payload: "two" }]);
    });

    test(
      "retained message is delivered with retain set, then cleared by a null message",
      OPTS,
      async () => {
        requireClients();
        const t = topic("retained");
        await procs.run("mosquitto_pub", pubArgs(t, "kept", ["-q", "1", "-r", ...V]));
        const first = await procs.wait(sub(t, 1, ["-q", "2", ...V]), "retained delivery");
        assert.equal(first.code, 0, first.stderr);
        assert.deepEqual(parseSub(first.stdout), [{
          topic: t,
          qos: 1,
          retain: true,
          payload: "kept",
        }]);

        await procs.run("mosquitto_pub", [
          ...hostArgs(broker),
          "-t",
          t,
          "-n",
          "-r",
          "-q",
          "1",
          ...V,
        ]);
        // Cleared: the first message a new subscriber sees is a live one, not "kept".
        const s = sub(t, 1, ["-q", "1", ...V]);
        const lines = await publishUntilReceived(procs, s, pubArgs(t, "live", ["-q", "1", ...V]));
        assert.deepEqual(lines, [{ topic: t, qos: 1, retain: false, payload: "live" }]);
      },
    );

    test(
      "persistent session: QoS 1/2 messages published while offline arrive on reconnect",
      OPTS,
      async () => {
        requireClients();
        const t = topic("session");
        const id = `mosq-${uid()}`;
        // 5.0 needs a session expiry interval for the session to outlive the connection.
        const persist = ["-c", "-i", id, ...(flag === "mqttv5" ? ["-x", "300"] : []), ...V];
        // -E: exit once subscribed, leaving the session behind.
        await procs.run("mosquitto_sub", [
          ...hostArgs(broker),
          "-t",
          t,
          "-q",
          "2",
          "-E",
          ...persist,
        ]);
        await procs.run("mosquitto_pub", pubArgs(t, "offline-1", ["-q", "1", ...V]));
        await procs.run("mosquitto_pub", pubArgs(t, "offline-2", ["-q", "2", ...V]));
        const r = await procs.wait(
          procs.start("mosquitto_sub", [
            ...hostArgs(broker),
            "-t",
            t,
            "-q",
            "2",
            "-C",
            "2",
            "-F",
            FORMAT,
            ...persist,
          ]),
          "queued messages",
        );
        assert.equal(r.code, 0, r.stderr);
        assert.deepEqual(parseSub(r.stdout), [
          { topic: t, qos: 1, retain: false, payload: "offline-1" },
          { topic: t, qos: 2, retain: false, payload: "offline-2" },
        ]);
        // Remove the session: connect once with a clean session.
        await procs.run("mosquitto_sub", [...hostArgs(broker), "-t", t, "-E", "-i", id, ...V]);
      },
    );
  });
}

describe("mosquitto clients with MQTT.js", () => {
  test("mosquitto_pub (3.1) reaches an MQTT.js 5.0 subscriber", OPTS, async () => {
    requireClients();
    const t = topic("to-mqttjs");
    const c = await clients.connect({ protocolVersion: 5, clientId: `mqttjs-${uid()}` });
    await subscribe(c.client, t, { qos: 2 });
    await procs.run("mosquitto_pub", pubArgs(t, "from-mosquitto", ["-q", "2", "-V", "mqttv31"]));
    const got = await c.inbox.payload("from-mosquitto", t);
    assert.equal(got.qos, 2);
  });

  test("MQTT.js 3.1.1 publishes to mosquitto_sub (5.0)", OPTS, async () => {
    requireClients();
    const t = topic("from-mqttjs");
    const s = sub(t, 1, ["-q", "2", "-V", "mqttv5"]);
    const c = await clients.connect({ protocolVersion: 4, clientId: `mqttjs-${uid()}` });
    const deadline = Date.now() + 5000;
    while (!s.exited && Date.now() < deadline) {
      await publish(c.client, t, "from-mqttjs", { qos: 2 });
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([s.done, new Promise((r) => (timer = setTimeout(r, 200)))]);
      clearTimeout(timer);
    }
    const r = await procs.wait(s, "mosquitto_sub to receive", 500);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(parseSub(r.stdout), [{
      topic: t,
      qos: 2,
      retain: false,
      payload: "from-mqttjs",
    }]);
  });
});
