// ACL deny rules refuse only the filters they cover; broader filters are accepted and the denied
// topics are filtered out where messages are delivered (issue 14.7), with a real config.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { brokerPerTest, startBroker } from "./helpers/harness.ts";
import { publish, subackCodes, subscribe, uid } from "./helpers/mqttjs.ts";

const TIMEOUT = { timeout: 30_000 };

const app = brokerPerTest();
const clients = app.clients;

describe("ACL deny rules and wildcard subscribers", () => {
  test(
    "deny subscribe test/nosubscribe: # is accepted and never gets that topic",
    TIMEOUT,
    async () => {
      const broker = app.broker = await startBroker({
        acl: {
          enable: true,
          defaultPolicy: "allow",
          rules: [{ permission: "deny", action: "subscribe", topic: "test/nosubscribe" }],
        },
      });
      if (broker.external) return;
      const sub = await clients.connect({ clientId: `s-${uid()}`, protocolVersion: 5 });
      assert.deepEqual(
        await subackCodes(sub.client, ["#", "test/+", "test/nosubscribe", "test/nosubscribe/x"]),
        [1, 1, 0x87, 1], // only the filter the rule covers is refused
      );
      const shared = await clients.connect({ clientId: `g-${uid()}`, protocolVersion: 4 });
      assert.deepEqual(await subackCodes(shared.client, ["$share/g/test/#"]), [1]);
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
    const broker = app.broker = await startBroker({
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
    assert.deepEqual(await subackCodes(other.client, ["#", "alerts/+"]), [1, 0x80]);
    const pub = await clients.connect({ clientId: `p-${uid()}` });
    await publish(pub.client, "alerts/fire", "a", { qos: 1 });
    await publish(pub.client, "news", "n", { qos: 1 });
    await ops.inbox.count(2);
    await other.inbox.payload("n");
    assert.deepEqual(ops.inbox.messages.map((m) => m.payload).sort(), ["a", "n"]);
    assert.deepEqual(other.inbox.messages.map((m) => m.payload), ["n"]);
  });
  test(
    "a share group's message goes to a member that may read it, not to a denied one",
    TIMEOUT,
    async () => {
      const broker = app.broker = await startBroker({
        acl: {
          enable: true,
          defaultPolicy: "allow",
          rules: [
            { permission: "allow", action: "subscribe", clientId: "ops", topic: "alerts/fire" },
            { permission: "deny", action: "subscribe", topic: "alerts/fire" },
          ],
        },
      });
      if (broker.external) return;
      const ops = await clients.connect({ clientId: "ops" });
      const other = await clients.connect({ clientId: `o-${uid()}` });
      // alerts/+ is broader than the denied topic, so both members are accepted [issue 14.7].
      assert.deepEqual(await subackCodes(ops.client, ["$share/g/alerts/+"]), [1]);
      assert.deepEqual(await subackCodes(other.client, ["$share/g/alerts/+"]), [1]);
      const pub = await clients.connect({ clientId: `p-${uid()}` });
      for (let i = 0; i < 6; i++) await publish(pub.client, "alerts/fire", `f${i}`, { qos: 1 });
      await ops.inbox.payload("f5");
      // Every fire alert reached the one member allowed to read it; none was dropped.
      const got = ops.inbox.messages.map((m) => m.payload).filter((p) => p.startsWith("f"));
      assert.deepEqual(got, ["f0", "f1", "f2", "f3", "f4", "f5"]);
      assert.ok(!other.inbox.messages.some((m) => m.payload.startsWith("f")));
      assert.equal(broker.core!.stats.dropped.notAuthorized, 0);
    },
  );
});
