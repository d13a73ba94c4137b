/**
 * Bridges to a real upstream Mosquitto (Debian `mosquitto`, started here on a
 * free loopback port): out, in and both directions at QoS 0/1/2 with topic
 * prefixes; no loops (5.0 No Local and 3.1.1's bridge bit upstream, origin
 * tracking locally); the upstream stopped mid-stream and restarted
 * (store-and-forward, order kept, the queue bound); TLS with a CA file.
 */
import { after, afterEach, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mustRun } from "./helpers/harness.ts";
import { Clients, publish, sleep, subscribe, uid, withTimeout } from "./helpers/mqttjs.ts";
import { mosquittoAvailable, startUpstream, type Upstream } from "./helpers/upstream_mosquitto.ts";
import { bridge, type BridgeApp, startBridgeApp, statusWatcher } from "./helpers/bridge_app.ts";
import { makePki, opensslAvailable, type TestPki } from "./helpers/certs.ts";
import type { QoS } from "../src/mqtt/packet.ts";

const have = mosquittoAvailable() && opensslAvailable();
const T = {
  timeout: 60_000,
  skip: !have && !mustRun() ? "mosquitto or openssl not on PATH" : false,
};

let upstream: Upstream | undefined;
let app: BridgeApp | undefined;
let pki: TestPki | undefined;
const local = new Clients(() => app!.url);
const remote = new Clients(() => upstream!.url);

afterEach(async () => {
  await local.closeAll();
  await remote.closeAll();
  await app?.app.stop();
  app = undefined;
  await upstream?.remove();
  upstream = undefined;
});
after(() => pki?.remove());

/** More than Mosquitto's receive maximum (20): enough refusals to fill the old send window. */
const REFUSED = 50;
/** Our own deadline under node:test's timeout (a test must end, also on Deno). */
const DEADLINE_MS = 60_000;

async function setup(topics: Parameters<typeof bridge>[0]["topics"], more = {}) {
  upstream = await startUpstream();
  app = await startBridgeApp([bridge({ name: "up", url: upstream.url, topics, ...more })]);
  const status = await statusWatcher(local, "up");
  await status.until((s) => s.connected, "connected");
  return status;
}

describe("MQTT bridge to an upstream Mosquitto", () => {
  test("mosquitto and openssl are available (required in CI)", T, () => {
    assert.ok(have, "mosquitto or openssl not found");
  });

  for (const qos of [0, 1, 2] as QoS[]) {
    test(
      `out at QoS ${qos}: local site1/sensors/# goes up as cloud/site1/sensors/#`,
      T,
      async () => {
        await setup([{ filter: "sensors/#", localPrefix: "site1/", remotePrefix: "cloud/site1/" }]);
        const sub = await remote.connect({ clientId: `sub-${uid()}` });
        await subscribe(sub.client, "cloud/#", { qos: 2 });
        const pub = await local.connect();
        await publish(pub.client, "site1/sensors/t1", `q${qos}`, { qos });
        await publish(pub.client, "site1/other", "not bridged", { qos });
        const m = await sub.inbox.payload(`q${qos}`);
        assert.equal(m.topic, "cloud/site1/sensors/t1");
        assert.equal(m.qos, qos);
        await sleep(200);
        assert.equal(sub.inbox.messages.length, 1, sub.inbox.describe());
      },
    );

    test(`in at QoS ${qos}: upstream cloud/cmd/# arrives locally as site1/cmd/#`, T, async () => {
      await setup([{
        filter: "#",
        direction: "in",
        localPrefix: "site1/cmd/",
        remotePrefix: "cloud/cmd/",
      }]);
      const sub = await local.connect();
      await subscribe(sub.client, "site1/#", { qos: 2 });
      const pub = await remote.connect();
      // The bridge's upstream SUBACK may still be on its way: send until one arrives.
      const deadline = Date.now() + 10_000;
      while (sub.inbox.messages.length === 0 && Date.now() < deadline) {
        await publish(pub.client, "cloud/cmd/reboot", `q${qos}`, { qos });
        await sleep(100);
      }
      const m = await sub.inbox.payload(`q${qos}`);
      assert.equal(m.topic, "site1/cmd/reboot");
      assert.equal(m.qos, qos);
    });
  }

  for (const protocolVersion of [5, 4]) {
    test(`both directions without loops (protocol ${protocolVersion})`, T, async () => {
      const status = await setup([{ filter: "chat/#", direction: "both", qos: 1 }], {
        protocolVersion,
      });
      const up = await remote.connect({ clientId: `up-${uid()}` });
      await subscribe(up.client, "chat/#", { qos: 1 });
      const down = await local.connect({ clientId: `down-${uid()}` });
      await subscribe(down.client, "chat/#", { qos: 1 });
      // Wait until the bridge's upstream subscription works (a message comes down).
      const deadline = Date.now() + 10_000;
      let n = 0;
      while (
        !down.inbox.messages.some((m) => m.payload.startsWith("probe")) && Date.now() < deadline
      ) {
        await publish(up.client, "chat/probe", `probe${n++}`, { qos: 1 });
        await sleep(100);
      }
      await down.inbox.payload("probe0");
      const probes = up.inbox.messages.length;
      await publish(down.client, "chat/a", "from-local", { qos: 1 });
      await publish(up.client, "chat/b", "from-upstream", { qos: 1 });
      await up.inbox.payload("from-local");
      await down.inbox.payload("from-upstream");
      await sleep(500);
      const count = (msgs: { payload: string }[], p: string) =>
        msgs.filter((m) => m.payload === p).length;
      // Each side sees every message exactly once: nothing echoed back over the bridge.
      assert.equal(count(up.inbox.messages, "from-local"), 1, up.inbox.describe());
      assert.equal(count(up.inbox.messages, "from-upstream"), 1, up.inbox.describe());
      assert.equal(count(down.inbox.messages, "from-local"), 1, down.inbox.describe());
      assert.equal(count(down.inbox.messages, "from-upstream"), 1, down.inbox.describe());
      assert.equal(up.inbox.messages.length, probes + 2, up.inbox.describe());
      const s = await status.until(
        (x) => x.sent >= 1 && x.received >= 2,
        "sent and received counted",
      );
      assert.equal(s.dropped, 0);
    });
  }

  test(
    "upstream stopped mid-stream and restarted: every acknowledged message arrives, in order",
    T,
    async () => {
      const status = await setup([{ filter: "data/#", qos: 1 }]);
      // A persistent subscriber upstream (Mosquitto keeps its session across the restart).
      const subId = `sink-${uid()}`;
      const sink = await remote.connect({ clientId: subId, clean: false });
      await subscribe(sink.client, "data/#", { qos: 1 });
      await sink.client.endAsync();
      const pub = await local.connect();
      const TOTAL = 300;
      for (let i = 0; i < TOTAL; i++) {
        await publish(pub.client, "data/x", String(i), { qos: 1 }); // acknowledged locally
        if (i === 100) await upstream!.stop(); // mid-stream
      }
      const down = await status.until(
        (s) => !s.connected && s.queued > 0,
        "disconnected, queueing",
      );
      assert.ok(down.queued <= TOTAL);
      await upstream!.start();
      await status.until((s) => s.connected && s.queued === 0, "reconnected and drained");
      const again = await remote.connect({ clientId: subId, clean: false });
      const got = await again.inbox.until(
        (ms) => new Set(ms.map((m) => m.payload)).size >= TOTAL,
        `${TOTAL} messages`,
        30_000,
      );
      // At least once across the outage: a message in flight when the link broke may come twice.
      const firsts: number[] = [];
      const seen = new Set<string>();
      for (const m of got) {
        if (!seen.has(m.payload)) {
          (seen.add(m.payload), firsts.push(Number(m.payload)));
        }
      }
      assert.deepEqual(
        firsts,
        Array.from({ length: TOTAL }, (_, i) => i),
        "each message, in order",
      );
      assert.ok(
        app!.log.some((l) => /bridge up: upstream .* unreachable/.test(l)),
        app!.log.join("\n"),
      );
      assert.equal(
        app!.log.filter((l) => /bridge up: connected/.test(l)).length,
        2,
        "logged once per state change",
      );
    },
  );

  test("QoS 2 across an upstream restart mid-flow: each message exactly once", T, async () => {
    const status = await setup([{ filter: "q2/#", qos: 2 }]);
    const subId = `sink-${uid()}`;
    const sink = await remote.connect({ clientId: subId, clean: false });
    await subscribe(sink.client, "q2/#", { qos: 2 });
    await sink.client.endAsync();
    const pub = await local.connect();
    const TOTAL = 600;
    let acked = 0;
    let stopping: Promise<void> | undefined;
    // 20 publishers' worth in flight, so the upstream goes down with messages between PUBLISH and PUBCOMP.
    await Promise.all(Array.from({ length: 20 }, async (_, w) => {
      for (let i = w; i < TOTAL; i += 20) {
        await publish(pub.client, "q2/x", String(i), { qos: 2 });
        if (++acked === 150) stopping = upstream!.stop();
      }
    }));
    await stopping;
    await upstream!.start();
    await status.until((s) => s.connected && s.queued === 0, "reconnected and drained", 30_000);
    const again = await remote.connect({ clientId: subId, clean: false });
    await again.inbox.until((ms) => ms.length >= TOTAL, `${TOTAL} messages`, 30_000);
    await sleep(500); // a late duplicate would arrive now
    const counts = new Map<string, number>();
    for (const m of again.inbox.messages) counts.set(m.payload, (counts.get(m.payload) ?? 0) + 1);
    assert.deepEqual([...counts].filter(([, n]) => n > 1), [], "none twice");
    assert.equal(counts.size, TOTAL);
  });

  test(
    "5.0: a reconnect to the upstream's kept session does not bring its retained messages again",
    T,
    async () => {
      const status = await setup([{ filter: "state/#", direction: "in", qos: 1 }]);
      const pub = await remote.connect();
      await publish(pub.client, "state/door", "open", { qos: 1, retain: true });
      await publish(pub.client, "state/marker", "m1", { qos: 1 });
      const sub = await local.connect({ clientId: `sub-${uid()}`, clean: false });
      await subscribe(sub.client, "state/#", { qos: 1 });
      // The upstream's SUBACK may come after the first marker: send until one arrives.
      for (let i = 0; !sub.inbox.messages.some((m) => m.topic === "state/marker"); i++) {
        assert.ok(i < 100, sub.inbox.describe());
        await publish(pub.client, "state/marker", "m1", { qos: 1 });
        await sleep(100);
      }
      await remote.closeAll();
      await upstream!.stop(); // Mosquitto keeps the bridge's session and its retained message
      await status.until((s) => !s.connected, "disconnected");
      await upstream!.start();
      await status.until((s) => s.connected, "reconnected");
      const again = await remote.connect();
      await publish(again.client, "state/marker", "m2", { qos: 1 });
      await sub.inbox.payload("m2");
      await sleep(300);
      // Sent again at a SUBSCRIBE to a subscription the session already has, it would be
      // published here as a new message: Retain Handling 1 asks for it only
      // when the subscription is new (a lost session still gets it).
      const doors = sub.inbox.messages.filter((m) => m.topic === "state/door");
      assert.equal(doors.length, 1, sub.inbox.describe());
    },
  );

  test(
    "a restarted mqttx (memory store) gets the upstream's retained messages again",
    T,
    async () => {
      const rules = [{ filter: "state/#", direction: "in" as const, qos: 1 as QoS }];
      await setup(rules);
      const pub = await remote.connect();
      await publish(pub.client, "state/door", "open", { qos: 1, retain: true });
      const first = await local.connect();
      for (let i = 0; !first.inbox.messages.some((m) => m.topic === "state/door"); i++) {
        assert.ok(i < 100, "the retained message came down");
        await subscribe(first.client, "state/#", { qos: 1 });
        await sleep(100);
      }
      await local.closeAll();
      await app!.app.stop(); // its retained messages were in memory: gone
      app = await startBridgeApp([bridge({ name: "up", url: upstream!.url, topics: rules })]);
      const status = await statusWatcher(local, "up");
      await status.until((s) => s.connected, "reconnected");
      const sub = await local.connect();
      await subscribe(sub.client, "state/#", { qos: 1 });
      // The upstream kept the bridge's session and subscription: only a subscription that
      // asks for retained messages again (Retain Handling 0) brings them to the new process.
      await sub.inbox.payload("open", "state/door", 10_000);
    },
  );

  test("the upstream URL's password never reaches the log", T, async () => {
    upstream = await startUpstream(); // allow_anonymous: any username/password is accepted
    const url = upstream.url.replace("mqtt://", "mqtt://gw:s3cr%3Ft@");
    app = await startBridgeApp([bridge({ name: "up", url, topics: [{ filter: "t/#" }] })]);
    const status = await statusWatcher(local, "up");
    await status.until((s) => s.connected, "connected with the URL's credentials");
    await upstream.stop();
    await status.until((s) => !s.connected, "disconnected");
    // The status may say so before the line is logged: wait for the line (a flake under load).
    for (let i = 0; i < 100 && !app.log.some((l) => /bridge up: .*unreachable/.test(l)); i++) {
      await sleep(100);
    }
    const lines = app.log.filter((l) => l.startsWith("bridge up:"));
    assert.ok(lines.some((l) => /connected to mqtt:\/\/gw:\*\*\*@/.test(l)), lines.join("\n"));
    assert.ok(lines.some((l) => /unreachable/.test(l)), lines.join("\n"));
    assert.ok(!app.log.some((l) => /s3cr/.test(l)), app.log.join("\n"));
  });

  test("queue-max: past the bound the oldest are dropped and counted", T, async () => {
    const status = await setup([{ filter: "q/#", qos: 1 }], { queueMax: 10 });
    const subId = `sink-${uid()}`;
    const sink = await remote.connect({ clientId: subId, clean: false });
    await subscribe(sink.client, "q/#", { qos: 1 });
    await sink.client.endAsync();
    await upstream!.stop();
    await status.until((s) => !s.connected, "disconnected");
    const pub = await local.connect();
    for (let i = 0; i < 30; i++) await publish(pub.client, "q/x", String(i), { qos: 1 });
    const full = await status.until((s) => s.dropped === 20, "20 dropped");
    assert.equal(full.queued, 10);
    assert.equal(app!.log.filter((l) => /queue full/.test(l)).length, 1, app!.log.join("\n"));
    await upstream!.start();
    await status.until((s) => s.connected && s.queued === 0, "drained");
    const again = await remote.connect({ clientId: subId, clean: false });
    const got = await again.inbox.count(10, 20_000);
    await sleep(300);
    assert.deepEqual(
      got.map((m) => m.payload),
      Array.from({ length: 10 }, (_, i) => String(20 + i)),
    );
  });

  test(
    "ws:// to the upstream (another mqttx: Mosquitto's websockets do not start here)",
    T,
    async () => {
      const cloud = await startBridgeApp([], {
        websocket: { enable: true, port: 0, path: "/mqtt" },
      });
      try {
        const wsUrl = `ws://127.0.0.1:${cloud.app.ports.websocket}/mqtt`;
        app = await startBridgeApp([
          bridge({ name: "ws", url: wsUrl, topics: [{ filter: "w/#" }] }),
        ]);
        const status = await statusWatcher(local, "ws");
        await status.until((s) => s.connected, "connected over ws://");
        const sub = await new Clients(() => cloud.url).connect({ clientId: `sub-${uid()}` });
        await subscribe(sub.client, "w/#", { qos: 2 });
        const pub = await local.connect();
        await publish(pub.client, "w/1", "over-ws", { qos: 2 });
        const m = await sub.inbox.payload("over-ws");
        assert.equal(m.qos, 2);
        sub.client.end(true);
      } finally {
        await app?.app.stop();
        await cloud.app.stop();
      }
    },
  );

  test("TLS to the upstream with a CA file", T, async () => {
    pki ??= makePki();
    upstream = await startUpstream({
      tls: { cert: pki.server.cert, key: pki.server.key, ca: pki.caFile },
    });
    app = await startBridgeApp([
      bridge({
        name: "tls",
        url: upstream.url,
        caFile: pki.caFile,
        topics: [{ filter: "t/#", qos: 1 }],
      }),
      // The same upstream without the CA: the certificate is not trusted, the bridge stays down.
      bridge({ name: "untrusted", url: upstream.url, topics: [{ filter: "t/#", qos: 1 }] }),
    ]);
    const status = await statusWatcher(local, "tls");
    await status.until((s) => s.connected, "connected over TLS");
    const sub = await remote.connect({ ca: pki.read(pki.caFile), clientId: `sub-${uid()}` });
    await subscribe(sub.client, "t/#", { qos: 1 });
    const pub = await local.connect();
    await publish(pub.client, "t/1", "secret", { qos: 1 });
    const m = await sub.inbox.payload("secret");
    assert.equal(m.topic, "t/1");
    await sleep(300);
    assert.equal(sub.inbox.messages.length, 1, "only the trusted bridge delivered");
    const untrusted = await statusWatcher(local, "untrusted");
    const u = await untrusted.until((s) => !s.connected && s.queued === 1, "untrusted stays down");
    assert.equal(u.sent, 0);
    assert.ok(
      app.log.some((l) => /bridge untrusted: upstream .* unreachable/.test(l)),
      app.log.join("\n"),
    );
  });
});

/**
 * The upstream refuses a message (MQTT 5 PUBACK/PUBREC reason code >= 0x80, here
 * Mosquitto's ACL): the bridge counts it as refused (status, log), removes it from
 * its queue and goes on sending. Before, each refusal kept a slot of the send
 * window, and after Mosquitto's receive maximum (20) of them nothing more was sent.
 */
describe("bridge: messages the upstream refuses", () => {
  for (const qos of [1, 2] as QoS[]) {
    test(
      `QoS ${qos}: ${REFUSED} refused, counted and removed; sending goes on`,
      T,
      () =>
        withTimeout(
          (async () => {
            // Anonymous clients may write up/ok/# and read everything: up/denied is refused.
            upstream = await startUpstream({
              acl: "topic readwrite up/ok/#\ntopic read #\n",
              maxQueuedMessages: 1000,
            });
            app = await startBridgeApp([
              bridge({
                name: "up",
                url: upstream.url,
                topics: [{ filter: "#", remotePrefix: "up/", qos }],
              }),
            ]);
            const status = await statusWatcher(local, "up");
            await status.until((s) => s.connected, "connected");
            const sub = await remote.connect({ clientId: `sub-${uid()}` });
            await subscribe(sub.client, "up/#", { qos: 2 });
            const pub = await local.connect();
            for (let i = 0; i < REFUSED; i++) {
              await publish(pub.client, "denied", String(i), { qos });
            }
            await publish(pub.client, "ok/after", "after", { qos });
            await sub.inbox.payload("after", "up/ok/after", 30_000);
            const s = await status.until(
              (s) => s.refused === REFUSED && s.queued === 0 && s.sent === 1,
              `${REFUSED} refused, 1 sent, queue empty`,
              30_000,
            );
            assert.equal(s.dropped, 0, "dropped counts a full queue only");
            assert.ok(sub.inbox.messages.every((m) => m.topic === "up/ok/after"));
            // Logged with the reason, rate-limited: not one line per refused message.
            const lines = app.log.filter((l) => /refused/.test(l));
            assert.ok(lines.length >= 1 && lines.length < 5, lines.join("\n"));
            assert.match(lines[0], /0x87|Not authorized/);
            assert.match(lines[0], /up\/denied/);
          })(),
          `QoS ${qos} refusals`,
          DEADLINE_MS,
        ),
    );
  }
});
