/**
 * Interop: MQTT.js 5 (protocol 3.1.1 and 5.0, and 3.1 once) against the broker
 * on a real loopback socket (raw-socket cases: interop_raw_socket_test.ts). Run
 * against another broker with MQTTX_TEST_EXTERNAL=host:port.
 *
 * "Nothing else arrived" is never checked by sleeping: a sentinel message is
 * published after the one that must not arrive, and the test waits for it.
 */
import { after, afterEach, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import type { IClientOptions } from "mqtt";
import { startBroker, type TestBroker } from "./helpers/harness.ts";
import {
  Clients,
  type Connected,
  publish,
  subscribe,
  uid,
  unsubscribe,
  withTimeout,
} from "./helpers/mqttjs.ts";

/** Above every bounded wait here, so a broker that never answers fails with our message. */
const TIMEOUT = { timeout: 20_000 };

let broker: TestBroker;
const clients = new Clients(() => broker.url);

before(async () => {
  broker = await startBroker();
});

afterEach(async () => {
  await clients.closeAll();
});

after(async () => {
  await clients.closeAll();
  await broker?.stop();
});

/** A topic prefix no other test (or earlier run on the same broker) uses. */
function prefix(): string {
  return `mqttx-interop/${uid()}`;
}

const VERSIONS = [
  { v: 4 as const, name: "MQTT 3.1.1" },
  { v: 5 as const, name: "MQTT 5.0" },
];

for (const { v, name } of VERSIONS) {
  const opts = (o: IClientOptions = {}): IClientOptions => ({
    protocolVersion: v,
    clientId: `mqttjs-${uid()}`,
    ...o,
  });

  describe(`MQTT.js ${name}`, () => {
    test(
      "connects: CONNACK accepted, no session present for a clean session",
      TIMEOUT,
      async () => {
        const { connack, client } = await clients.connect(opts({ clean: true }));
        assert.equal(connack.sessionPresent, false);
        if (v === 5) assert.equal(connack.reasonCode ?? 0, 0);
        else assert.equal(connack.returnCode, 0);
        assert.equal(client.connected, true);
      },
    );

    test("empty client id with clean session is accepted", TIMEOUT, async () => {
      const { connack, client } = await clients.connect(opts({ clientId: "", clean: true }));
      assert.equal(client.connected, true);
      if (v === 5) {
        const assigned = connack.properties?.assignedClientIdentifier;
        assert.equal(typeof assigned, "string", "CONNACK carries an Assigned Client Identifier");
        assert.ok(assigned!.length > 0, "the assigned id is not empty");
      }
      // It also works: it can subscribe and receive its own message.
      const t = `${prefix()}/empty-id`;
      const c = await clients.connect(opts({ clientId: "", clean: true }));
      await subscribe(c.client, t, { qos: 1 });
      await publish(c.client, t, "hello", { qos: 1 });
      await c.inbox.payload("hello", t);
    });

    test(
      "publish/subscribe at QoS 0/1/2 both ways; delivered at min(publish, subscription) QoS",
      TIMEOUT,
      async () => {
        const p = prefix();
        const sub = await clients.connect(opts());
        for (const s of [0, 1, 2] as const) {
          const [grant] = await subscribe(sub.client, `${p}/s${s}`, { qos: s });
          assert.equal(grant.qos, s, `granted QoS for subscription at ${s}`);
        }
        const pub = await clients.connect(opts());
        for (const q of [0, 1, 2] as const) {
          for (const s of [0, 1, 2] as const) {
            await publish(pub.client, `${p}/s${s}`, `p${q}s${s}`, { qos: q });
          }
        }
        await sub.inbox.count(9);
        for (const q of [0, 1, 2]) {
          for (const s of [0, 1, 2]) {
            const got = sub.inbox.messages.filter((m) => m.payload === `p${q}s${s}`);
            assert.equal(got.length, 1, `p${q}s${s} delivered once`);
            assert.equal(
              got[0].qos,
              Math.min(q, s),
              `p${q}s${s} delivered at QoS ${Math.min(q, s)}`,
            );
            assert.equal(got[0].retain, false);
          }
        }
        assert.equal(sub.inbox.messages.length, 9);
      },
    );

    test(
      "overlapping subscriptions of one client deliver once, at the highest QoS",
      TIMEOUT,
      async () => {
        const p = prefix();
        const sub = await clients.connect(opts());
        await subscribe(sub.client, `${p}/a/#`, { qos: 1 });
        await subscribe(sub.client, `${p}/a/+`, { qos: 2 });
        const pub = await clients.connect(opts());
        await publish(pub.client, `${p}/a/b`, "x", { qos: 2 });
        // Matched by both filters like "x", so it arrives at the same QoS, after it.
        await publish(pub.client, `${p}/a/c`, "sentinel", { qos: 2 });
        await sub.inbox.until(
          (all) => all.some((m) => m.payload === "sentinel" && m.qos === 2),
          "the sentinel at QoS 2",
        );
        const xs = sub.inbox.messages.filter((m) => m.payload === "x");
        assert.ok(xs.some((m) => m.qos === 2), `"x" delivered at QoS 2 (${sub.inbox.describe()})`);
        // 5.0 allows one copy per matching subscription (mosquitto sends two); mqttx sends one.
        if (!(broker.external && v === 5)) {
          assert.equal(xs.length, 1, `"x" delivered exactly once (${sub.inbox.describe()})`);
        }
      },
    );

    test("200 numbered QoS 1 messages arrive in order", TIMEOUT, async () => {
      const t = `${prefix()}/order`;
      const sub = await clients.connect(opts());
      await subscribe(sub.client, t, { qos: 1 });
      const pub = await clients.connect(opts());
      const sends: Promise<unknown>[] = [];
      for (let i = 0; i < 200; i++) sends.push(pub.client.publishAsync(t, String(i), { qos: 1 }));
      await withTimeout(Promise.all(sends), "200 PUBACKs", 10_000);
      await sub.inbox.count(200, 10_000);
      const got = sub.inbox.messages.map((m) => Number(m.payload));
      assert.deepEqual(got, Array.from({ length: 200 }, (_, i) => i));
      assert.ok(sub.inbox.messages.every((m) => m.qos === 1));
    });

    test("+ and # wildcards match as specified", TIMEOUT, async () => {
      const p = prefix();
      const filters = [`${p}/a/+/c`, `${p}/a/#`, `${p}/+/b/#`, `${p}/+`];
      const subs: Connected[] = [];
      for (const f of filters) {
        const c = await clients.connect(opts());
        await subscribe(c.client, f, { qos: 1 });
        subs.push(c);
      }
      const topics = ["a/b/c", "a/x/c", "a/b", "a", "b/b/c", "a/b/c/d", "x/b", "b", "x/y/c"];
      const pub = await clients.connect(opts());
      for (const t of topics) await publish(pub.client, `${p}/${t}`, t, { qos: 1 });
      // a/b/c matches every filter but `${p}/+`, b matches only `${p}/+`: sent last, they end the wait.
      await publish(pub.client, `${p}/a/b/c`, "end", { qos: 1 });
      await publish(pub.client, `${p}/b`, "end", { qos: 1 });
      const expected = [
        ["a/b/c", "a/x/c"],
        ["a/b/c", "a/x/c", "a/b", "a", "a/b/c/d"],
        ["a/b/c", "a/b", "b/b/c", "a/b/c/d", "x/b"],
        ["a", "b"],
      ];
      for (let i = 0; i < filters.length; i++) {
        await subs[i].inbox.payload("end");
        const got = subs[i].inbox.messages.map((m) => m.payload).filter((x) => x !== "end");
        assert.deepEqual(got.sort(), expected[i].sort(), `filter ${filters[i]}`);
      }
    });

    test("topics starting with $ are not matched by # or +/x", TIMEOUT, async () => {
      const all = await clients.connect(opts());
      await subscribe(all.client, "#", { qos: 1 });
      const plus = await clients.connect(opts());
      await subscribe(plus.client, "+/x", { qos: 1 });
      const dollarTopic = `$mqttx-${uid()}/x`;
      const exact = await clients.connect(opts());
      await subscribe(exact.client, dollarTopic, { qos: 1 });
      const pub = await clients.connect(opts());
      // A broker may refuse client publishes to $SYS (mosquitto does: 5.0 PUBACK 0x87, 3.1.1
      // silently). Then this half is vacuous and the other $ topic still checks the rule.
      await withTimeout(pub.client.publishAsync("$SYS/x", "sys", { qos: 1 }), "PUBACK $SYS/x")
        .catch((e) => {
          if ((e as { code?: number }).code !== 0x87) throw e;
        });
      await publish(pub.client, dollarTopic, "dollar", { qos: 1 });
      // The positive control: an exact subscription does receive it.
      await exact.inbox.payload("dollar", dollarTopic);
      const sentinel = `s${uid()}/x`; // matched by both # and +/x
      await publish(pub.client, sentinel, "sentinel", { qos: 1 });
      await all.inbox.payload("sentinel", sentinel);
      await plus.inbox.payload("sentinel", sentinel);
      for (const [label, c] of [["#", all], ["+/x", plus]] as const) {
        const dollar = c.inbox.messages.filter((m) => m.topic.startsWith("$"));
        assert.deepEqual(dollar, [], `${label} must not match topics starting with $`);
      }
    });

    test(
      "retained: stored, sent on subscribe with retain set, replaced, cleared by empty payload",
      TIMEOUT,
      async () => {
        const t = `${prefix()}/retained`;
        const pub = await clients.connect(opts());
        const live = await clients.connect(opts());
        await subscribe(live.client, t, { qos: 2 });

        await publish(pub.client, t, "r1", { qos: 1, retain: true });
        const liveR1 = await live.inbox.payload("r1");
        assert.equal(liveR1.retain, false, "a live subscriber gets retain=0 [MQTT-3.3.1-9]");

        const a = await clients.connect(opts());
        await subscribe(a.client, t, { qos: 2 });
        const r1 = await a.inbox.payload("r1");
        assert.equal(r1.retain, true, "a new subscriber gets the retained message with retain=1");
        assert.equal(r1.qos, 1, "at the QoS it was published with (subscription is 2)");

        await publish(pub.client, t, "r2", { qos: 1, retain: true });
        const b = await clients.connect(opts());
        await subscribe(b.client, t, { qos: 1 });
        await publish(pub.client, t, "after-b", { qos: 1 });
        await b.inbox.payload("after-b");
        assert.deepEqual(
          b.inbox.messages.map((m) => [m.payload, m.retain]),
          [["r2", true], ["after-b", false]],
          "only the replacing message is retained",
        );

        await publish(pub.client, t, "", { qos: 1, retain: true });
        const c = await clients.connect(opts());
        await subscribe(c.client, t, { qos: 1 });
        await publish(pub.client, t, "after-c", { qos: 1 });
        await c.inbox.payload("after-c");
        assert.deepEqual(
          c.inbox.messages.map((m) => m.payload),
          ["after-c"],
          "an empty retained payload clears the retained message",
        );
      },
    );

    test(
      "will is published with its QoS and retain flag when the socket dies",
      TIMEOUT,
      async () => {
        const t = `${prefix()}/will`;
        const watcher = await clients.connect(opts());
        // rap (retain as published) lets a 5.0 watcher see the will's retain flag live.
        await subscribe(watcher.client, t, v === 5 ? { qos: 2, rap: true } : { qos: 2 });
        const dying = await clients.connect(opts({
          will: { topic: t, payload: "gone", qos: 1, retain: true },
        }));
        dying.client.stream.destroy();
        const will = await watcher.inbox.payload("gone", t);
        assert.equal(will.qos, 1, "will QoS");
        assert.equal(
          will.retain,
          v === 5,
          v === 5 ? "retain as published" : "live delivery: retain=0",
        );

        const later = await clients.connect(opts());
        await subscribe(later.client, t, { qos: 2 });
        const retained = await later.inbox.payload("gone", t);
        assert.equal(retained.retain, true, "the will was retained");
        assert.equal(retained.qos, 1);

        await publish(later.client, t, "", { qos: 1, retain: true }); // clean up
      },
    );

    test("will is not published after a clean disconnect", TIMEOUT, async () => {
      const t = `${prefix()}/no-will`;
      const watcher = await clients.connect(opts());
      await subscribe(watcher.client, t, { qos: 1 });
      const leaving = await clients.connect(opts({
        will: { topic: t, payload: "gone", qos: 1, retain: false },
      }));
      await withTimeout(leaving.client.endAsync(), "clean end");
      await withTimeout(leaving.closed, "socket closed");
      const pub = await clients.connect(opts());
      await publish(pub.client, t, "sentinel", { qos: 1 });
      await watcher.inbox.payload("sentinel");
      assert.deepEqual(watcher.inbox.messages.map((m) => m.payload), ["sentinel"]);
    });

    test(
      "persistent session: offline QoS 1/2 messages delivered once on reconnect; clean session discards",
      TIMEOUT,
      async () => {
        const t = `${prefix()}/session`;
        const id = `mqttjs-persist-${uid()}`;
        const persistent: IClientOptions = v === 5
          ? { clientId: id, clean: false, properties: { sessionExpiryInterval: 300 } }
          : { clientId: id, clean: false };

        const first = await clients.connect(opts(persistent));
        assert.equal(first.connack.sessionPresent, false, "a new id has no session");
        await subscribe(first.client, t, { qos: 2 });
        await withTimeout(first.client.endAsync(), "end");

        const pub = await clients.connect(opts());
        await publish(pub.client, t, "m1", { qos: 1 });
        await publish(pub.client, t, "m2", { qos: 2 });
        await publish(pub.client, t, "m0", { qos: 0 }); // may or may not be queued: not asserted

        const again = await clients.connect(opts(persistent));
        assert.equal(again.connack.sessionPresent, true, "session present on reconnect");
        await again.inbox.payload("m1");
        await again.inbox.payload("m2");
        await publish(pub.client, t, "sentinel", { qos: 2 });
        await again.inbox.payload("sentinel");
        const got = again.inbox.messages.map((m) => m.payload).filter((x) => x !== "m0");
        assert.deepEqual(got, ["m1", "m2", "sentinel"], "each exactly once, in order");
        assert.equal(again.inbox.messages.find((m) => m.payload === "m1")!.qos, 1);
        assert.equal(again.inbox.messages.find((m) => m.payload === "m2")!.qos, 2);
        await withTimeout(again.client.endAsync(), "end");

        // Offline message, then a clean session: both the message and the session go.
        await publish(pub.client, t, "m3", { qos: 1 });
        const clean = await clients.connect(
          opts(
            v === 5
              ? { clientId: id, clean: true, properties: { sessionExpiryInterval: 0 } }
              : { clientId: id, clean: true },
          ),
        );
        assert.equal(clean.connack.sessionPresent, false, "clean session: no session present");
        await subscribe(clean.client, t, { qos: 1 });
        await publish(pub.client, t, "after-clean", { qos: 1 });
        await clean.inbox.payload("after-clean");
        assert.deepEqual(clean.inbox.messages.map((m) => m.payload), ["after-clean"]);
        await withTimeout(clean.client.endAsync(), "end");

        const fresh = await clients.connect(opts(persistent));
        assert.equal(fresh.connack.sessionPresent, false, "the clean session was not kept");
      },
    );

    test("takeover: a second client with the same id disconnects the first", TIMEOUT, async () => {
      const id = `mqttjs-takeover-${uid()}`;
      const first = await clients.connect(opts({ clientId: id }));
      const second = await clients.connect(opts({ clientId: id }));
      await withTimeout(first.closed, "first connection closed by the broker");
      // mosquitto 2.0.11 closes the old connection without a DISCONNECT.
      if (v === 5 && !broker.external) {
        assert.equal(first.disconnects.length, 1, "5.0: DISCONNECT sent to the old connection");
        assert.equal(first.disconnects[0].reasonCode, 0x8e, "reason: Session taken over");
      }
      const t = `${prefix()}/takeover`;
      await subscribe(second.client, t, { qos: 1 });
      await publish(second.client, t, "still here", { qos: 1 });
      await second.inbox.payload("still here");
      assert.equal(second.client.connected, true);
    });

    test("UNSUBSCRIBE stops delivery", TIMEOUT, async () => {
      const p = prefix();
      const sub = await clients.connect(opts());
      await subscribe(sub.client, [`${p}/gone`, `${p}/kept`], { qos: 1 });
      const pub = await clients.connect(opts());
      await publish(pub.client, `${p}/gone`, "before", { qos: 1 });
      await sub.inbox.payload("before");
      await unsubscribe(sub.client, `${p}/gone`);
      await publish(pub.client, `${p}/gone`, "after", { qos: 1 });
      await publish(pub.client, `${p}/kept`, "sentinel", { qos: 1 });
      await sub.inbox.payload("sentinel");
      assert.deepEqual(sub.inbox.on(`${p}/gone`).map((m) => m.payload), ["before"]);
    });
  });
}

describe("MQTT.js: mixed versions, 3.1, 5.0 specifics", () => {
  test("a 3.1.1 client and a 5.0 client exchange messages both ways", TIMEOUT, async () => {
    const p = prefix();
    const v4 = await clients.connect({ protocolVersion: 4, clientId: `v4-${uid()}` });
    const v5 = await clients.connect({ protocolVersion: 5, clientId: `v5-${uid()}` });
    await subscribe(v4.client, `${p}/to4`, { qos: 2 });
    await subscribe(v5.client, `${p}/to5`, { qos: 2 });
    for (const q of [0, 1, 2] as const) {
      await publish(v4.client, `${p}/to5`, `from4-q${q}`, { qos: q });
      await publish(v5.client, `${p}/to4`, `from5-q${q}`, { qos: q });
    }
    await v5.inbox.count(3);
    await v4.inbox.count(3);
    assert.deepEqual(v5.inbox.messages.map((m) => [m.payload, m.qos]), [
      ["from4-q0", 0],
      ["from4-q1", 1],
      ["from4-q2", 2],
    ]);
    assert.deepEqual(v4.inbox.messages.map((m) => [m.payload, m.qos]), [
      ["from5-q0", 0],
      ["from5-q1", 1],
      ["from5-q2", 2],
    ]);
  });

  test("MQTT 3.1 (MQIsdp) client connects and exchanges messages", TIMEOUT, async () => {
    const t = `${prefix()}/v31`;
    const old = await clients.connect({
      protocolId: "MQIsdp",
      protocolVersion: 3,
      clientId: `v31-${uid()}`,
    });
    assert.equal(old.connack.returnCode, 0);
    await subscribe(old.client, t, { qos: 2 });
    const v5 = await clients.connect({ protocolVersion: 5, clientId: `v5-${uid()}` });
    await publish(v5.client, t, "to-3.1", { qos: 2 });
    const got = await old.inbox.payload("to-3.1");
    assert.equal(got.qos, 2);
  });

  test(
    "5.0 session expiry 0 (the default) ends the session on disconnect even with clean=false",
    TIMEOUT,
    async () => {
      const id = `mqttjs-exp0-${uid()}`;
      const a = await clients.connect({ protocolVersion: 5, clientId: id, clean: false });
      await subscribe(a.client, `${prefix()}/x`, { qos: 1 });
      await withTimeout(a.client.endAsync(), "end");
      const b = await clients.connect({ protocolVersion: 5, clientId: id, clean: false });
      assert.equal(b.connack.sessionPresent, false);
    },
  );

  test("5.0 DISCONNECT with reason 0x04 publishes the will", TIMEOUT, async () => {
    const t = `${prefix()}/will-04`;
    const watcher = await clients.connect({ protocolVersion: 5, clientId: `w-${uid()}` });
    await subscribe(watcher.client, t, { qos: 1 });
    const leaving = await clients.connect({
      protocolVersion: 5,
      clientId: `l-${uid()}`,
      will: { topic: t, payload: "bye", qos: 1, retain: false },
    });
    await withTimeout(leaving.client.endAsync({ reasonCode: 0x04 }), "end with 0x04");
    const will = await watcher.inbox.payload("bye", t);
    assert.equal(will.qos, 1);
  });
});
