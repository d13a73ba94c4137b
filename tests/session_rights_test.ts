// Rights follow the user, not the client id: a persistent session belongs to the user name that
// made it, a resumed session keeps only what its user may subscribe to, and every message is
// checked against the receiving client's read rights as it goes out (issue 14.6).
import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { formatCredential, hashPassword } from "../src/auth/credential.ts";
import { brokerPerTest, startBroker, type TestBroker } from "./helpers/harness.ts";
import { publish, subscribe, uid } from "./helpers/mqttjs.ts";
import type { IClientOptions } from "mqtt";
import { newBroker, PacketClient, str, text } from "./helpers/packet_client.ts";
import { staticAcl } from "../src/acl/acl.ts";

const TIMEOUT = { timeout: 30_000 };
const dir = fs.mkdtempSync(path.join(os.tmpdir(), "mqttx-rights-"));
after(() => fs.rmSync(dir, { recursive: true, force: true }));

/** A password file for alice, bob and carol (password = name), and an ACL: only alice reads secret/#. */
async function securedBroker(allowCrossUserSession = false): Promise<TestBroker> {
  const file = path.join(dir, `passwd-${uid()}`);
  const lines = [];
  for (const name of ["alice", "bob", "carol"]) {
    lines.push(`${name}:${formatCredential(await hashPassword(name))}`);
  }
  fs.writeFileSync(file, lines.join("\n") + "\n");
  return await startBroker({
    allowCrossUserSession,
    auth: { allowAnonymous: false, passwordFile: file },
    acl: {
      enable: true,
      defaultPolicy: "allow",
      rules: [
        { permission: "allow", action: "subscribe", username: "alice", topic: "secret/#" },
        { permission: "deny", action: "subscribe", topic: "secret/#" },
      ],
    },
  });
}

const app = brokerPerTest();
const clients = app.clients;

const as = (user: string, opts: IClientOptions): IClientOptions => ({
  username: user,
  password: user,
  ...opts,
});

/** alice's persistent session: subscribed to secret/# at QoS 1, offline, one message queued. */
async function aliceAway(id: string, protocolVersion: 4 | 5): Promise<void> {
  const session = protocolVersion === 5 ? { properties: { sessionExpiryInterval: 300 } } : {};
  const alice = await clients.connect(
    as("alice", { clientId: id, clean: false, protocolVersion, ...session }),
  );
  await subscribe(alice.client, "secret/#", { qos: 1 });
  alice.client.end();
  await alice.closed;
  const carol = await clients.connect(as("carol", { protocolVersion }));
  await publish(carol.client, "secret/plan", "queued while away", { qos: 1 });
}

async function refusedCode(opts: IClientOptions): Promise<number | undefined> {
  try {
    await clients.connect(opts);
    return undefined;
  } catch (e) {
    return (e as { code?: number }).code;
  }
}

describe("a persistent session belongs to its user", () => {
  for (const protocolVersion of [4, 5] as const) {
    const refused = protocolVersion === 5 ? 0x87 : 5;
    test(
      `3.1.1/5.0 (v${protocolVersion}): bob cannot resume or take over alice's session`,
      TIMEOUT,
      async () => {
        const broker = app.broker = await securedBroker();
        if (broker.external) return;
        const id = `alice-${uid()}`;
        await aliceAway(id, protocolVersion);
        // Offline session: neither resumed nor ended by bob.
        assert.equal(
          await refusedCode(as("bob", { clientId: id, clean: false, protocolVersion })),
          refused,
        );
        assert.equal(
          await refusedCode(as("bob", { clientId: id, clean: true, protocolVersion })),
          refused,
        );
        // Connected session: bob cannot take it over either.
        const session = protocolVersion === 5 ? { properties: { sessionExpiryInterval: 300 } } : {};
        const alice = await clients.connect(
          as("alice", { clientId: id, clean: false, protocolVersion, ...session }),
        );
        assert.equal(alice.connack.sessionPresent, true);
        await alice.inbox.payload("queued while away", "secret/plan");
        assert.equal(
          await refusedCode(as("bob", { clientId: id, clean: false, protocolVersion })),
          refused,
        );
        assert.equal(alice.client.connected, true);
        const carol = await clients.connect(as("carol", { protocolVersion }));
        await publish(carol.client, "secret/plan", "live", { qos: 1 });
        await alice.inbox.payload("live", "secret/plan");
      },
    );
  }

  test(
    "allow-cross-user-session: bob may resume it, but gets none of alice's secrets",
    TIMEOUT,
    async () => {
      const broker = app.broker = await securedBroker(true);
      if (broker.external) return;
      const id = `alice-${uid()}`;
      await aliceAway(id, 4);
      const bob = await clients.connect(
        as("bob", { clientId: id, clean: false, protocolVersion: 4 }),
      );
      assert.equal(bob.connack.sessionPresent, true);
      const carol = await clients.connect(as("carol", {}));
      await publish(carol.client, "secret/plan", "live", { qos: 1 });
      // bob's own subscription to something he may read still works, and arrives after both.
      await subscribe(bob.client, "public/#", { qos: 1 });
      await publish(carol.client, "public/news", "hello", { qos: 1 });
      await bob.inbox.payload("hello", "public/news");
      assert.deepEqual(bob.inbox.messages.map((m) => m.topic), ["public/news"]);
      // The queued one was refused at delivery; the live one no longer matched (subscription removed).
      assert.equal(broker.core!.stats.dropped.notAuthorized, 1);
    },
  );
});

describe("read rights at delivery (in memory)", () => {
  test("messages in flight to alice are not resent to bob resuming her session", async () => {
    const b = newBroker({
      allowCrossUserSession: true,
      hooks: [staticAcl({
        enable: true,
        defaultPolicy: "allow",
        rules: [
          { permission: "allow", action: "subscribe", username: "alice", topic: "secret/#" },
          { permission: "deny", action: "subscribe", topic: "secret/#" },
        ],
      })],
    });
    const alice = await PacketClient.connect(b, { clientId: "a", clean: false, username: "alice" });
    alice.client.send({
      type: 8,
      packetId: 1,
      subscriptions: [{ topicFilter: "secret/#", qos: 1 }],
    });
    assert.deepEqual((await alice.client.expect(9)).reasonCodes, [1]);
    const { client: p } = await PacketClient.connect(b, { clientId: "p", username: "carol" });
    for (let i = 1; i <= 3; i++) {
      p.send({
        type: 3,
        topic: "secret/x",
        payload: text(`s${i}`),
        qos: 1,
        retain: false,
        dup: false,
        packetId: i,
      });
      await p.expect(4);
    }
    for (let i = 1; i <= 3; i++) assert.equal(str((await alice.client.expect(3)).payload), `s${i}`);
    alice.client.drop(); // never acknowledged: all three stay in flight
    await alice.client.expectClosed();
    const bob = await PacketClient.connect(b, { clientId: "a", clean: false, username: "bob" });
    assert.equal(bob.connack.sessionPresent, true);
    await bob.client.expectNothing(200);
    assert.equal(b.stats.dropped.notAuthorized, 3);
    assert.equal(b.sessions.get("a")!.inflight.size, 0);
    assert.equal(b.sessions.get("a")!.subscriptions.size, 0); // re-checked against bob's rights
  });
});
