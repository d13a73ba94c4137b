/**
 * Interop: MQTT.js in protocol version 5 against the broker on a real loopback
 * socket: more reason codes, retained-message expiry, shutdown, enhanced
 * authentication (AUTH).
 *
 * Run against another broker with MQTTX_TEST_EXTERNAL=host:port (e.g. a local
 * mosquitto); what depends on mqttx's configuration or on behaviour the
 * specification leaves open is then skipped or relaxed, and says so.
 *
 * "Nothing else arrived" is never checked by sleeping: a sentinel message is
 * published after the one that must not arrive, and the test waits for it.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import mqtt from "mqtt";
import type { ErrorWithSubackPacket, IConnackPacket } from "mqtt";
import { publish, sleep, subscribe, uid, withTimeout } from "./helpers/mqttjs.ts";
import { PacketLog, subscriptionIds } from "./helpers/mqttjs5.ts";
import { startAppWithHooks } from "./helpers/mqtt5_app.ts";
import { prefix, TIMEOUT, useInterop5Broker, v5 } from "./helpers/interop5_fixture.ts";

const fx = useInterop5Broker();
const { apps, clients, clientsOf, raw, startExtra } = fx;

describe("MQTT.js 5.0: more reason codes, retained expiry, shutdown, AUTH", () => {
  test(
    "a retained message expires; before that it carries the remaining interval and the " +
      "Subscription Identifier",
    TIMEOUT,
    async () => {
      const p = prefix();
      const pub = await clients.connect(v5());
      await publish(pub.client, `${p}/short`, "short", {
        qos: 1,
        retain: true,
        properties: { messageExpiryInterval: 1 },
      });
      await publish(pub.client, `${p}/long`, "long", {
        qos: 1,
        retain: true,
        properties: { messageExpiryInterval: 60 },
      });
      const early = await clients.connect(v5());
      await subscribe(early.client, `${p}/long`, {
        qos: 1,
        properties: { subscriptionIdentifier: 42 },
      });
      const long = await early.inbox.payload("long");
      assert.equal(long.retain, true);
      const left = long.properties?.messageExpiryInterval;
      assert.ok(left !== undefined && left > 0 && left <= 60, `remaining ${left} <= 60`);
      assert.deepEqual(subscriptionIds(long.properties?.subscriptionIdentifier), [42]);

      await sleep(2100);
      const late = await clients.connect(v5());
      await subscribe(late.client, `${p}/#`, { qos: 1 });
      await publish(pub.client, `${p}/sentinel`, "sentinel", { qos: 1 });
      await late.inbox.payload("sentinel");
      assert.deepEqual(
        late.inbox.messages.map((m) => m.payload).sort(),
        ["long", "sentinel"],
        "the expired retained message is not sent [MQTT-3.3.2-5]",
      );
      await publish(pub.client, `${p}/long`, "", { qos: 1, retain: true }); // clear
    },
  );

  test(
    "Payload Format Indicator 1 with invalid UTF-8: PUBACK 0x99, not delivered",
    TIMEOUT,
    async (tc) => {
      // Validating is a MAY (3.3.2.3.2); mosquitto 2.0.11 does not.
      if (fx.broker.external) return tc.skip("mqttx-specific: the check is optional");
      const t = `${prefix()}/pfi`;
      const sub = await clients.connect(v5());
      await subscribe(sub.client, t, { qos: 1 });
      const pub = await clients.connect(v5());
      const log = new PacketLog(pub.client);
      const bad = Buffer.from([0x61, 0xff, 0xfe, 0x62]);
      const err = await withTimeout(
        pub.client.publishAsync(t, bad, { qos: 1, properties: { payloadFormatIndicator: true } })
          .then(() => undefined, (e: Error) => e),
        "PUBACK",
      );
      assert.ok(err, "MQTT.js reports the refusal as an error");
      const [ack] = log.received<{ cmd: "puback"; reasonCode?: number }>("puback");
      assert.equal(ack.reasonCode, 0x99, "Payload format invalid");
      await publish(pub.client, t, "sentinel", { qos: 1 });
      await sub.inbox.payload("sentinel");
      assert.deepEqual(sub.inbox.messages.map((m) => m.payload), ["sentinel"]);
      assert.equal(pub.client.connected, true, "the connection stays");
    },
  );

  test("UNSUBACK: 0x00 for a subscription, 0x11 for none", TIMEOUT, async () => {
    const p = prefix();
    const c = await clients.connect(v5());
    await subscribe(c.client, `${p}/a`, { qos: 1 });
    const log = new PacketLog(c.client);
    await withTimeout(c.client.unsubscribeAsync([`${p}/a`, `${p}/never`]), "UNSUBACK");
    const [unsuback] = log.received<{ cmd: "unsuback"; granted?: number[] }>("unsuback");
    assert.deepEqual(unsuback.granted, [0x00, 0x11], "MQTT.js calls UNSUBACK codes granted");
  });

  test(
    "shared subscription with No Local is a protocol error (DISCONNECT 0x82)",
    TIMEOUT,
    async (tc) => {
      if (fx.broker.external) return tc.skip("mosquitto 2.0.11 does not enforce [MQTT-3.8.3-4]");
      const c = await clients.connect(v5());
      c.client.on("error", () => {}); // the failed SUBSCRIBE surfaces here too
      c.client.subscribe(`$share/g/${prefix()}/x`, { qos: 1, nl: true }, () => {});
      await withTimeout(c.closed, "the connection closed [MQTT-3.8.3-4]");
      assert.deepEqual(c.disconnects.map((d) => d.reasonCode), [0x82]);
    },
  );

  test(
    "SUBACK 0x9E when shared subscriptions are disabled; CONNACK says so",
    TIMEOUT,
    async (t) => {
      if (fx.broker.external) return t.skip("needs mqttx configuration");
      const b = await startExtra({ shareTopic: { enable: false } });
      const c = await clientsOf(b).connect(v5());
      assert.equal(c.connack.properties?.sharedSubscriptionAvailable, false);
      // MQTT.js rejects a SUBSCRIBE with any failure code, carrying the SUBACK.
      const err = await withTimeout(
        c.client.subscribeAsync([`$share/g/${prefix()}/x`, `${prefix()}/y`], { qos: 1 })
          .then(() => undefined, (e: ErrorWithSubackPacket) => e),
        "SUBACK",
      );
      assert.ok(err, "the shared filter is refused");
      assert.deepEqual(
        (err.packet as { granted?: number[] }).granted,
        [0x9e, 1],
        "Shared Subscriptions not supported",
      );
    },
  );

  test(
    "server shutdown: DISCONNECT 0x8B, or 0x9C with a Server Reference when configured",
    TIMEOUT,
    async (t) => {
      if (fx.broker.external) return t.skip("needs mqttx configuration");
      const plain = await startExtra({});
      const a = await clientsOf(plain).connect(v5());
      await plain.stop();
      await withTimeout(a.closed, "closed by shutdown");
      assert.deepEqual(a.disconnects.map((d) => d.reasonCode), [0x8b], "Server shutting down");

      const moving = await startExtra({ mqtt5: { serverReference: "other.example:1883" } });
      const b = await clientsOf(moving).connect(v5());
      await moving.stop();
      await withTimeout(b.closed, "closed by shutdown");
      assert.deepEqual(b.disconnects.map((d) => d.reasonCode), [0x9c], "Use another server");
      assert.equal(b.disconnects[0].properties?.serverReference, "other.example:1883");
    },
  );

  test(
    "enhanced authentication: MQTT.js answers the AUTH challenge and is connected",
    TIMEOUT,
    async (t) => {
      if (fx.broker.external) return t.skip("needs an mqttx authenticator hook");
      const text = (s: string) => new TextEncoder().encode(s);
      const app = await startAppWithHooks([{
        authenticators: [{
          method: "TOY",
          start: () => {
            let challenged = false;
            return {
              step(data) {
                if (!challenged) {
                  challenged = true;
                  return { kind: "continue", data: text("nonce") };
                }
                return data && new TextDecoder().decode(data) === "nonce:secret"
                  ? { kind: "success", data: text("welcome") }
                  : { kind: "fail", reasonCode: 0x86 };
              },
            };
          },
        }],
      }]);
      apps.push(app);
      const attempt = (answer: string) => {
        const client = mqtt.connect(app.url, {
          protocolVersion: 5,
          clientId: `mqttjs5-auth-${uid()}`,
          reconnectPeriod: 0,
          properties: { authenticationMethod: "TOY", authenticationData: Buffer.from("hi") },
        });
        raw.push(client);
        const challenges: string[] = [];
        client.handleAuth = (packet, cb) => {
          challenges.push(Buffer.from(packet.properties?.authenticationData ?? []).toString());
          cb(undefined, {
            cmd: "auth",
            reasonCode: 0x18,
            properties: { authenticationMethod: "TOY", authenticationData: Buffer.from(answer) },
          });
        };
        const result = withTimeout(
          new Promise<IConnackPacket | Error>((resolve) => {
            client.once("connect", resolve);
            client.once("error", resolve);
          }),
          "CONNACK after AUTH",
        );
        return { client, challenges, result };
      };

      const good = attempt("nonce:secret");
      const connack = await good.result;
      assert.ok(!(connack instanceof Error), `connected (${connack})`);
      assert.deepEqual(good.challenges, ["nonce"]);
      assert.equal(connack.properties?.authenticationMethod, "TOY");
      assert.equal(Buffer.from(connack.properties?.authenticationData ?? []).toString(), "welcome");

      const bad = attempt("nonce:wrong");
      const refused = await bad.result;
      assert.ok(refused instanceof Error, "refused");
      assert.equal((refused as Error & { code?: number }).code, 0x86, "Bad user name or password");
    },
  );
});
