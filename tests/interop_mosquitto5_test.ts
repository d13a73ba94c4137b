/**
 * Interop: the mosquitto 2.0.11 command-line clients in MQTT 5.0 (`-V mqttv5`,
 * properties set with `-D`, printed with `mosquitto_sub -F %E %C %R %D %F %A %P`)
 * against the broker on a real loopback socket, across to 3.1.1 clients and
 * to MQTT.js. Skipped when the clients are not installed, unless
 * MQTTX_REQUIRE_INTEGRATION=1 (then they fail).
 *
 * mosquitto_sub 2.0.11 has no option for No Local, Retain Handling or
 * Subscription Identifiers; those are covered with MQTT.js in
 * interop_mqtt5_test.ts.
 *
 * Offline-session tests avoid mosquitto_sub's buffered output: `-E` subscribes
 * and exits, messages are published to the stored session, and a resumed
 * `mosquitto_sub -C n` prints them when it exits.
 */
import { after, afterEach, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mustRun, startBroker, type TestBroker } from "./helpers/harness.ts";
import { Clients, publish, sleep, subscribe, uid } from "./helpers/mqttjs.ts";
import { hostArgs, mosquittoClientsAvailable, Procs } from "./helpers/mosquitto.ts";
import {
  FORMAT5,
  parseSub5,
  publishRoundsUntilExit,
  publishUntilExit,
  type SubLine5,
} from "./helpers/mosquitto5.ts";

const available = mosquittoClientsAvailable();
/** Skip without the clients, unless integration tests are required (then run and fail). */
const OPTS = {
  timeout: 20_000,
  skip: !available && !mustRun() ? "mosquitto_sub/mosquitto_pub not on PATH" : false,
};
const rrAvailable = spawnSync("mosquitto_rr", ["--help"], { stdio: "ignore" }).error ===
  undefined;

const V5 = ["-V", "mqttv5"];
const V311 = ["-V", "mqttv311"];

let broker: TestBroker;
const procs = new Procs();
const clients = new Clients(() => broker.url);

before(async () => {
  // Aliases towards clients only go to clients that announce a Topic Alias Maximum.
  broker = await startBroker({ mqtt5: { outgoingTopicAliases: true } });
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
  return `mqttx-mosq5/${uid()}/${name}`;
}

/** `mosquitto_sub` printing FORMAT5 lines, exiting after `count` messages. */
function sub5(t: string, count: number, extra: string[] = []) {
  return procs.start("mosquitto_sub", [
    ...hostArgs(broker),
    "-t",
    t,
    "-C",
    String(count),
    "-F",
    FORMAT5,
    ...extra,
  ]);
}

function pubArgs(t: string, message: string, extra: string[] = []): string[] {
  return [...hostArgs(broker), "-t", t, "-m", message, ...extra];
}

/** Persistent-session arguments for mosquitto_sub: fixed id, no clean start. */
function persistent(id: string, expiry: string[] = ["-x", "60"]): string[] {
  return ["-c", "-i", id, ...expiry, ...V5];
}

/** Subscribes with a stored session and exits at once (`-E`). */
async function subscribeAndLeave(t: string, args: string[]): Promise<void> {
  await procs.run("mosquitto_sub", [...hostArgs(broker), "-t", t, "-q", "1", "-E", ...args]);
}

/** Resumes a stored session and returns the first `n` messages it gets. */
async function resume(t: string, n: number, args: string[]): Promise<SubLine5[]> {
  const r = await procs.wait(sub5(t, n, ["-q", "1", ...args]), `${n} queued message(s)`);
  assert.equal(r.code, 0, r.stderr);
  return parseSub5(r.stdout);
}

/** Ends a stored session: connect once with a clean start and expiry 0. */
async function endSession(t: string, id: string): Promise<void> {
  await procs.run("mosquitto_sub", [...hostArgs(broker), "-t", t, "-E", "-i", id, ...V5]);
}

describe("mosquitto clients 5.0: properties", () => {
  test(
    "user properties (order kept, repeated keys), content type, response topic, correlation " +
      "data, payload format: mosquitto_pub to mosquitto_sub",
    OPTS,
    async () => {
      requireClients();
      const t = topic("props");
      const s = sub5(t, 1, ["-q", "1", ...V5]);
      const r = await publishUntilExit(
        procs,
        s,
        pubArgs(t, "payload|with|bars", [
          "-q",
          "1",
          ...["-D", "publish", "user-property", "b", "1"],
          ...["-D", "publish", "user-property", "a", "2"],
          ...["-D", "publish", "user-property", "b", "3"],
          ...["-D", "publish", "content-type", "text/plain"],
          ...["-D", "publish", "response-topic", `${t}/reply`],
          ...["-D", "publish", "correlation-data", "corr-17"],
          ...["-D", "publish", "payload-format-indicator", "1"],
          ...V5,
        ]),
      );
      const [line] = parseSub5(r.stdout);
      assert.deepEqual(line.userProperties, [["b", "1"], ["a", "2"], ["b", "3"]]);
      assert.equal(line.contentType, "text/plain");
      assert.equal(line.responseTopic, `${t}/reply`);
      assert.equal(line.correlationData, "corr-17");
      assert.equal(line.payloadFormat, 1);
      assert.equal(line.expiry, undefined, "no expiry when none was set");
      assert.equal(line.payload, "payload|with|bars");
    },
  );

  test("user properties from mosquitto_pub reach MQTT.js, and back", OPTS, async () => {
    requireClients();
    const t = topic("props-mqttjs");
    const js = await clients.connect({ protocolVersion: 5, clientId: `mqttjs-${uid()}` });
    await subscribe(js.client, t, { qos: 1 });
    await procs.run(
      "mosquitto_pub",
      pubArgs(t, "to-js", [
        "-q",
        "1",
        ...["-D", "publish", "user-property", "k1", "v1"],
        ...["-D", "publish", "user-property", "k2", "v2"],
        ...V5,
      ]),
    );
    const got = await js.inbox.payload("to-js", t);
    assert.deepEqual(Object.entries(got.properties?.userProperties ?? {}), [
      ["k1", "v1"],
      ["k2", "v2"],
    ]);

    const back = topic("props-back");
    const s = sub5(back, 1, ["-q", "1", ...V5]);
    const deadline = Date.now() + 5000;
    while (!s.exited && Date.now() < deadline) {
      await publish(js.client, back, "to-mosquitto", {
        qos: 1,
        properties: { userProperties: { z: "26", y: ["25", "24"] }, contentType: "x/y" },
      });
      await Promise.race([s.done, sleep(200)]);
    }
    const r = await procs.wait(s, "mosquitto_sub", 500);
    const [line] = parseSub5(r.stdout);
    assert.deepEqual(line.userProperties, [["z", "26"], ["y", "25"], ["y", "24"]]);
    assert.equal(line.contentType, "x/y");
    assert.equal(line.payload, "to-mosquitto");
  });

  test(
    "request/response: mosquitto_rr gets the answer an MQTT.js responder sent to its " +
      "Response Topic with its Correlation Data",
    OPTS,
    async (t) => {
      requireClients();
      if (!rrAvailable) {
        // CI (MQTTX_REQUIRE_INTEGRATION=1) must not pass by skipping a missing peer.
        if (mustRun()) throw new Error("mosquitto_rr not on PATH (package mosquitto-clients)");
        return t.skip("mosquitto_rr not on PATH");
      }
      const req = topic("rr-req");
      const resp = topic("rr-resp");
      const responder = await clients.connect({ protocolVersion: 5, clientId: `rr-${uid()}` });
      const seen: { responseTopic?: string; correlation?: boolean }[] = [];
      responder.client.on("message", (_topic, payload, packet) => {
        const props = packet.properties ?? {};
        seen.push({ responseTopic: props.responseTopic, correlation: !!props.correlationData });
        if (!props.responseTopic) return;
        responder.client.publish(props.responseTopic, `answer to ${payload}`, {
          qos: 1,
          properties: { correlationData: props.correlationData },
        });
      });
      await subscribe(responder.client, req, { qos: 1 });
      const r = await procs.wait(
        procs.start("mosquitto_rr", [
          ...hostArgs(broker),
          "-t",
          req,
          "-e",
          resp,
          "-m",
          "question",
          "-q",
          "1",
          ...["-D", "publish", "correlation-data", "rr-17"],
          "-W",
          "5",
        ]),
        "mosquitto_rr to get its response",
        8000,
      );
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout.trim(), "answer to question");
      assert.deepEqual(seen, [{ responseTopic: resp, correlation: true }]);
    },
  );

  test("a 3.1.1 mosquitto_pub reaches a 5.0 mosquitto_sub: no properties", OPTS, async () => {
    requireClients();
    const t = topic("v4-to-v5");
    const s = sub5(t, 1, ["-q", "1", ...V5]);
    const r = await publishUntilExit(procs, s, pubArgs(t, "from-311", ["-q", "1", ...V311]));
    assert.deepEqual(parseSub5(r.stdout), [{
      topic: t,
      qos: 1,
      retain: false,
      expiry: undefined,
      contentType: undefined,
      responseTopic: undefined,
      correlationData: undefined,
      payloadFormat: undefined,
      topicAlias: undefined,
      userProperties: [],
      payload: "from-311",
    }]);
  });

  test(
    "a 5.0 mosquitto_pub with properties reaches a 3.1.1 mosquitto_sub unchanged",
    OPTS,
    async () => {
      requireClients();
      const t = topic("v5-to-v4");
      const s = sub5(t, 1, ["-q", "2", ...V311]);
      const r = await publishUntilExit(
        procs,
        s,
        pubArgs(t, "from-5", [
          "-q",
          "2",
          ...["-D", "publish", "user-property", "k", "v"],
          ...["-D", "publish", "message-expiry-interval", "60"],
          ...V5,
        ]),
      );
      const [line] = parseSub5(r.stdout);
      assert.deepEqual(
        [line.topic, line.qos, line.retain, line.payload],
        [t, 2, false, "from-5"],
      );
      assert.deepEqual(line.userProperties, [], "3.1.1 has no properties");
      assert.equal(line.expiry, undefined);
    },
  );
});

describe("mosquitto clients 5.0: expiry and sessions", () => {
  test("Message Expiry Interval is forwarded, never larger", OPTS, async () => {
    requireClients();
    const t = topic("expiry");
    const s = sub5(t, 1, ["-q", "1", ...V5]);
    const r = await publishUntilExit(
      procs,
      s,
      pubArgs(t, "ten", ["-q", "1", "-D", "publish", "message-expiry-interval", "10", ...V5]),
    );
    const [line] = parseSub5(r.stdout);
    assert.ok(line.expiry !== undefined && line.expiry > 0 && line.expiry <= 10, `${line.expiry}`);
  });

  test(
    "a queued message arrives if the session resumes in time, not after it expired",
    OPTS,
    async () => {
      requireClients();
      const t = topic("expiry-queued");
      const id = `mosq5-exp-${uid()}`;
      await subscribeAndLeave(t, persistent(id));
      await procs.run(
        "mosquitto_pub",
        pubArgs(t, "in-time", ["-q", "1", "-D", "publish", "message-expiry-interval", "30", ...V5]),
      );
      const [first] = await resume(t, 1, persistent(id));
      assert.equal(first.payload, "in-time");
      assert.ok(first.expiry !== undefined && first.expiry > 0 && first.expiry <= 30);

      await procs.run(
        "mosquitto_pub",
        pubArgs(t, "expires", ["-q", "1", "-D", "publish", "message-expiry-interval", "1", ...V5]),
      );
      await procs.run("mosquitto_pub", pubArgs(t, "sentinel", ["-q", "1", ...V5]));
      await sleep(2100);
      const [next] = await resume(t, 1, persistent(id));
      assert.equal(next.payload, "sentinel", "the expired message was dropped [MQTT-3.3.2-5]");
      await endSession(t, id);
    },
  );

  test(
    "Session Expiry Interval (-x 2): resumed in time, gone after",
    OPTS,
    async () => {
      requireClients();
      const t = topic("session-expiry");
      const id = `mosq5-sei-${uid()}`;
      // (-c implies -x -1, so "-D connect session-expiry-interval" would be a duplicate.)
      const two = persistent(id, ["-x", "2"]);
      await subscribeAndLeave(t, two);
      await procs.run("mosquitto_pub", pubArgs(t, "kept", ["-q", "1", ...V5]));
      const [kept] = await resume(t, 1, two);
      assert.equal(kept.payload, "kept", "the session was resumed within 2 s");

      await sleep(3000);
      // The session (with its subscription) expired: this message is queued nowhere.
      await procs.run("mosquitto_pub", pubArgs(t, "lost", ["-q", "1", ...V5]));
      const s = sub5(t, 1, ["-q", "1", ...two]);
      const r = await publishUntilExit(procs, s, pubArgs(t, "live", ["-q", "1", ...V5]));
      assert.deepEqual(parseSub5(r.stdout).map((l) => l.payload), ["live"]);
      await endSession(t, id);
    },
  );

  test(
    "Receive Maximum 1 (-D connect receive-maximum 1): 30 queued QoS 1 messages, all, in order",
    OPTS,
    async () => {
      requireClients();
      const t = topic("receive-max");
      const id = `mosq5-rm-${uid()}`;
      const args = [...persistent(id), "-D", "connect", "receive-maximum", "1"];
      await subscribeAndLeave(t, args);
      const js = await clients.connect({ protocolVersion: 5, clientId: `pub-${uid()}` });
      const sent = Array.from({ length: 30 }, (_, i) => `n${i}`);
      for (const m of sent) await publish(js.client, t, m, { qos: 1 });
      const got = await resume(t, 30, args);
      assert.deepEqual(got.map((l) => l.payload), sent);
      await endSession(t, id);
    },
  );

  test(
    "Maximum Packet Size (-D connect maximum-packet-size 200): a larger message is skipped",
    OPTS,
    async () => {
      requireClients();
      const t = topic("max-packet");
      // Live, not queued: mosquitto 2.0.11 stalls a resumed session's queue after dropping one.
      const s = sub5(t, 2, ["-q", "1", "-D", "connect", "maximum-packet-size", "200", ...V5]);
      const r = await publishRoundsUntilExit(procs, s, [
        pubArgs(t, "x".repeat(500), ["-q", "1", ...V5]),
        pubArgs(t, "fits", ["-q", "1", ...V5]),
      ]);
      assert.deepEqual(
        parseSub5(r.stdout).map((l) => l.payload),
        ["fits", "fits"],
        "the 500-byte message was never sent [MQTT-3.1.2-25]",
      );
    },
  );
});

describe("mosquitto clients 5.0: subscription options, aliases, reason codes", () => {
  test(
    "--retain-as-published keeps RETAIN on a message that was not sent as retained-on-subscribe",
    OPTS,
    async () => {
      requireClients();
      const t = topic("rap");
      const idRap = `mosq5-rap-${uid()}`;
      const idPlain = `mosq5-plain-${uid()}`;
      const rap = [...persistent(idRap), "--retain-as-published"];
      const plain = persistent(idPlain);
      await subscribeAndLeave(t, rap);
      await subscribeAndLeave(t, plain);
      // Published while both sessions are stored: a normal (not retained-on-subscribe) delivery.
      await procs.run("mosquitto_pub", pubArgs(t, "kept", ["-q", "1", "-r", ...V5]));
      const [withRap] = await resume(t, 1, rap);
      const [without] = await resume(t, 1, plain);
      assert.deepEqual([withRap.payload, withRap.retain], ["kept", true], "retain as published");
      assert.deepEqual([without.payload, without.retain], ["kept", false], "[MQTT-3.3.1-9]");
      await procs.run("mosquitto_pub", [...hostArgs(broker), "-t", t, "-n", "-r", ...V5]);
      await endSession(t, idRap);
      await endSession(t, idPlain);
    },
  );

  test(
    "topic aliases from mosquitto_pub (--repeat with -D publish topic-alias 1)",
    OPTS,
    async () => {
      requireClients();
      const t = topic("alias-in");
      const js = await clients.connect({ protocolVersion: 5, clientId: `alias-${uid()}` });
      await subscribe(js.client, t, { qos: 1 });
      const r = await procs.run(
        "mosquitto_pub",
        pubArgs(t, "aliased", [
          "-q",
          "1",
          "--repeat",
          "3",
          "-D",
          "publish",
          "topic-alias",
          "1",
          "-d",
          ...V5,
        ]),
      );
      // -d shows the second and third PUBLISH went without a topic name.
      const sends = r.stdout.split("\n").filter((l) => l.includes("sending PUBLISH"));
      assert.equal(sends.length, 3, r.stdout);
      assert.ok(sends[0].includes(`'${t}'`) && sends[2].includes("'(null)'"), r.stdout);
      await js.inbox.count(3);
      assert.deepEqual(js.inbox.messages.map((m) => [m.topic, m.payload]), [
        [t, "aliased"],
        [t, "aliased"],
        [t, "aliased"],
      ]);
    },
  );

  test(
    "topic alias towards mosquitto_sub (-D connect topic-alias-maximum 5): set with its topic",
    OPTS,
    async () => {
      requireClients();
      // libmosquitto 2.0.11 announces the maximum but rejects a PUBLISH with an empty topic
      // (alias only) as a protocol error; so only the first message, which sets the alias
      // together with its topic, is checked here. MQTT.js covers alias-only delivery.
      const t = topic("alias-out");
      const s = sub5(t, 1, ["-q", "1", "-D", "connect", "topic-alias-maximum", "5", ...V5]);
      const r = await publishUntilExit(procs, s, pubArgs(t, "m", ["-q", "1", ...V5]));
      const [line] = parseSub5(r.stdout);
      assert.deepEqual([line.topic, line.payload], [t, "m"]);
      // mosquitto 2.0.11 does not send topic aliases; mqttx does when configured (it is here).
      if (!broker.external) assert.equal(line.topicAlias, 1, "alias 1 set with the topic");
    },
  );

  test(
    "PUBACK reason 0x10 (no matching subscribers) as mosquitto_pub -d shows it",
    OPTS,
    async () => {
      requireClients();
      const t = topic("nobody");
      const r = await procs.run("mosquitto_pub", pubArgs(t, "x", ["-q", "1", "-d", ...V5]));
      assert.match(r.stdout, /received PUBACK \(Mid: \d+, RC:16\)/);
    },
  );
});
