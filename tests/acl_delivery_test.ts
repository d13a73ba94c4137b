// ACL deny rules refuse only the filters they cover; broader filters are accepted and the denied
// topics are filtered out where messages are delivered (issue 14.7), with a real config.
import { afterEach, describe, test } from "node:test";
import assert from "node:assert/strict";
import { startBroker, type TestBroker } from "./helpers/harness.ts";
import { Clients, publish, subscribe, uid, withTimeout } from "./helpers/mqttjs.ts";
import type { MqttClient } from "mqtt";

const TIMEOUT = { timeout: 30_000 };

let broker: TestBroker | undefined;
const clients = new Clients(() => broker!.url);
afterEach(async () => {
  await clients.closeAll();
  await broker?.stop();
  broker = undefined;
});

/** SUBACK return codes, also when MQTT.js rejects because one was refused. */
function grants(client: MqttClient, filters: string[]): Promise<number[]> {
  return withTimeout(
    client.subscribeAsync(filters, { qos: 1 }).then(
      (g) => g.map((x) => x.qos as number),
      (e: { packet?: { granted?: (number | { qos: number })[] } }) => {
        if (!e.packet?.granted) throw e;
        return e.packet.granted.map((g) => typeof g === "number" ? g : g.qos);
      },
    ),
    `SUBACK for ${filters}`,
  );
}

describe("ACL deny rules and wildcard subscribers", () => {
  test(
    "deny subscribe test/nosubscribe: # is accepted and never gets that topic",
    TIMEOUT,
    async () => {
      broker = await startBroker({
        acl: {
          enable: true,
          defaultPolicy: "allow",
          rules: [{ permission: "deny", action: "subscribe", topic: "test/nosubscribe" }],
        },
      });
      if (broker.external) return;
      const sub = await clients.connect({ clientId: `s-${uid()}`, protocolVersion: 5 });
      assert.deepEqual(
        await grants(sub.client, ["#", "test/+", "test/nosubscribe", "test/nosubscribe/x"]),
        [1, 1, 0x87, 1], // only the filter the rule covers is refused
      );
      const shared = await clients.connect({ clientId: `g-${uid()}`, protocolVersion: 4 });
      assert.deepEqual(await grants(shared.client, ["$share/g/test/#"]), [1]);
      const pub = await clients.connect({ clientId: `p-${uid()}` });
      // Publishing there is allowed (the rule is subscribe-only), and a # subscriber would match it.
      await publish(pub.client, "test/nosubscribe", "hidden", { qos: 1 });
      await publish(pub.client, "test/other", "shown", { qos: 1 });
      await sub.inbox.payload("shown");
      await shared.inbox.payload("shown");
      await publish(pub.client, "zzz", "last", { qos: 0 });
      await sub.inbox.payload("last");
      // "shown" once though # and test/+ both match; "hidden" to nobody.
      assert.deepEqual(sub.inbox.messages.map((m) => m.payload), ["shown", "last"]);
      assert.deepEqual(shared.inbox.messages.map((m) => m.payload), ["shown"]);
      // Filtered at delivery: once for the # subscriber, once for the share group member.
      assert.equal(broker.core!.stats.dropped.notAuthorized, 2);
    },
  );

  test("a user-specific allow before the deny keeps that user's access", TIMEOUT, async () => {
    broker = await startBroker({
      acl: {
        enable: true,
        defaultPolicy: "allow",
        rules: [
          { permission: "allow", action: "subscribe", clientId: "ops", topic: "alerts/#" },
          { permission: "deny", action: "subscribe", topic: "alerts/#" },
        ],
      },
    });
    if (broker.external) return;
    const ops = await clients.connect({ clientId: "ops" });
    const other = await clients.connect({ clientId: `o-${uid()}` });
    await subscribe(ops.client, "#", { qos: 1 });
    assert.deepEqual(await grants(other.client, ["#", "alerts/+"]), [1, 0x80]);
    const pub = await clients.connect({ clientId: `p-${uid()}` });
    await publish(pub.client, "alerts/fire", "a", { qos: 1 });
    await publish(pub.client, "news", "n", { qos: 1 });
    await ops.inbox.count(2);
    await other.inbox.payload("n");
    assert.deepEqual(ops.inbox.messages.map((m) => m.payload).sort(), ["a", "n"]);
    assert.deepEqual(other.inbox.messages.map((m) => m.payload), ["n"]);
  });
});
