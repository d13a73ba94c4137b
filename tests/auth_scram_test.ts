// SCRAM-SHA-256 (RFC 5802/7677): stored credentials, the RFC 7677 test vector, and full MQTT 5.0
// enhanced-authentication exchanges through the broker, re-authentication included.
import { afterEach, describe, test } from "node:test";
import assert from "node:assert/strict";
import { closeAll, newBroker, PacketClient, str, text } from "./helpers/packet_client.ts";
import { defaultConfig } from "../src/config/schema.ts";
import type { MqttxConfig } from "../src/config/types.ts";
import type { AuthStep, ClientInfo } from "../src/broker/hooks.ts";
import { createAuthPlugin } from "../src/auth/mod.ts";
import {
  formatCredential,
  hashPassword,
  parseCredential,
  unb64,
  verifyPassword,
} from "../src/auth/credential.ts";
import { SCRAM_METHOD, scramAuthenticator } from "../src/auth/scram.ts";
import { ScramClient } from "./helpers/scram_client.ts";

afterEach(closeAll);

const TIMEOUT = { timeout: 20_000 };
const M = SCRAM_METHOD;

// RFC 7677 section 3.
const RFC = {
  user: "user",
  password: "pencil",
  clientNonce: "rOprNGfwEbeRWgbNEkqO",
  serverNonce: "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0",
  salt: "W22ZaJ0SNY7soEsUEjb6gQ==",
  clientFirst: "n,,n=user,r=rOprNGfwEbeRWgbNEkqO",
  serverFirst:
    "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
  clientFinal: "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0," +
    "p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
  serverFinal: "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=",
};

const client: ClientInfo = { clientId: "x", remoteAddr: "127.0.0.1:1", protocolVersion: 5 };

type Auth = MqttxConfig["auth"];
async function scramBroker(over: Partial<Auth> = {}, now?: () => number) {
  const plugin = await createAuthPlugin({
    ...defaultConfig().auth,
    users: [{
      username: "alice",
      password: formatCredential(await hashPassword("secret")),
      authorizedSub: ["s/#"],
      authorizedPub: ["p/#"],
    }],
    ...over,
  }, { log: () => {}, readTextFile: () => Promise.reject(new Error("none")), now });
  const connected: ClientInfo[] = [];
  const broker = newBroker({ hooks: [plugin!.hooks, { onConnected: (c) => connected.push(c) }] });
  return { broker, connected };
}

function sendConnect(c: PacketClient, data: string, username?: string) {
  c.send({
    type: 1,
    protocolName: "MQTT",
    protocolVersion: 5,
    clean: true,
    keepAlive: 0,
    clientId: "scram" + Math.random().toString(36).slice(2, 8),
    username,
    properties: { authenticationMethod: M, authenticationData: text(data) },
  });
}

function sendAuth(c: PacketClient, reasonCode: number, data?: string) {
  c.send({
    type: 15,
    reasonCode,
    properties: { authenticationMethod: M, authenticationData: data ? text(data) : undefined },
  });
}

/** CONNECT with SCRAM through to CONNACK; returns the CONNACK. */
async function scramConnect(c: PacketClient, sc: ScramClient, password?: string) {
  sendConnect(c, sc.first());
  const challenge = await c.expect(15);
  assert.equal(challenge.reasonCode, 0x18);
  assert.equal(challenge.properties?.authenticationMethod, M);
  sendAuth(c, 0x18, await sc.final(str(challenge.properties!.authenticationData!), password));
  return await c.expect(2);
}

describe("stored credentials", () => {
  test("RFC 7677: pencil with the RFC's salt; verify in both directions", async () => {
    const cred = await hashPassword(RFC.password, 4096, unb64(RFC.salt)!);
    const s = formatCredential(cred);
    assert.match(s, /^SCRAM-SHA-256\$4096:W22ZaJ0SNY7soEsUEjb6gQ==\$[A-Za-z0-9+/]{43}=:[^:]{44}$/);
    assert.deepEqual(parseCredential(s), cred);
    assert.equal(await verifyPassword(parseCredential(s)!, "pencil"), true);
    assert.equal(await verifyPassword(parseCredential(s)!, "pencil "), false);
    assert.equal(await verifyPassword(parseCredential(s)!, ""), false);
  });

  test("hashes get fresh salts; weak or malformed entries are not credentials", async () => {
    const a = formatCredential(await hashPassword("pw"));
    const b = formatCredential(await hashPassword("pw"));
    assert.notEqual(a, b);
    assert.equal(parseCredential(a.replace("$4096:", "$4095:")), undefined); // below RFC 7677
    assert.equal(parseCredential("pw"), undefined);
    assert.equal(parseCredential(a.slice(0, -4)), undefined);
    assert.equal(
      parseCredential(a.toLowerCase().replace(/\$.*/, "") + a.slice(13))?.iterations,
      4096,
    );
    await assert.rejects(hashPassword("pw", 1000), RangeError);
  });
});

describe("SCRAM-SHA-256 authenticator", () => {
  test("RFC 7677 test vector, with the server nonce injected", async () => {
    const credential = await hashPassword(RFC.password, 4096, unb64(RFC.salt)!);
    const auth = scramAuthenticator({
      lookup: (u) => (u === RFC.user ? { credential, authorizedSub: ["x"] } : undefined),
      nonce: () => RFC.serverNonce,
    });
    assert.equal(auth.method, "SCRAM-SHA-256");
    const session = auth.start(client);
    const first = await session.step(text(RFC.clientFirst));
    assert.equal(first.kind, "continue");
    assert.equal(str((first as { data: Uint8Array }).data), RFC.serverFirst);
    const last = await session.step(text(RFC.clientFinal));
    assert.deepEqual(last, {
      kind: "success",
      data: text(RFC.serverFinal),
      decision: { ok: true, username: "user", authorizedSub: ["x"], authorizedPub: undefined },
    });
  });

  test("a changed proof byte, nonce or channel binding fails with 0x86", async () => {
    const credential = await hashPassword(RFC.password, 4096, unb64(RFC.salt)!);
    const start = async () => {
      const s = scramAuthenticator({ lookup: () => ({ credential }), nonce: () => RFC.serverNonce })
        .start(client);
      assert.equal((await s.step(text(RFC.clientFirst))).kind, "continue");
      return s;
    };
    const badProof = RFC.clientFinal.replace("p=dHzb", "p=dHzc");
    const badNonce = RFC.clientFinal.replace("k0,", "k1,");
    const badBinding = RFC.clientFinal.replace("c=biws", "c=eSws");
    for (const final of [badProof, badNonce, badBinding, "garbage", ""]) {
      const step = await (await start()).step(text(final)) as AuthStep & { kind: "fail" };
      assert.equal(step.kind, "fail", final);
      assert.equal(step.reasonCode, 0x86);
    }
  });

  test("malformed client-first messages fail with a reason", async () => {
    const auth = scramAuthenticator({ lookup: () => undefined });
    const cases: [string | undefined, RegExp][] = [
      [undefined, /missing/],
      ["n=user,r=abc", /malformed/],
      ["p=tls-unique,,n=user,r=abc", /channel binding/],
      ["n,a=other,n=user,r=abc", /authorization identity/],
      ["n,,m=ext,n=user,r=abc", /mandatory extensions/],
      ["n,,n=us=er,r=abc", /malformed/],
      ["n,,n=user,r=", /malformed/],
      ["n,,n=,r=abc", /malformed/],
    ];
    for (const [data, reason] of cases) {
      const step = await auth.start(client).step(data === undefined ? undefined : text(data));
      assert.equal(step.kind, "fail", String(data));
      assert.equal((step as { reasonCode: number }).reasonCode, 0x86);
      assert.match((step as { reasonString?: string }).reasonString ?? "", reason);
    }
    // Naming oneself as the authorization identity is fine; "=2C" is a comma.
    const ok = await auth.start(client).step(text("n,a=a=2Cb,n=a=2Cb,r=abc"));
    assert.equal(ok.kind, "continue");
  });

  test("an unknown user gets a stable fake salt, then 0x86", async () => {
    const auth = scramAuthenticator({ lookup: () => undefined, nonce: () => "S" });
    const a = await auth.start(client).step(text("n,,n=ghost,r=abc"));
    const b = await auth.start(client).step(text("n,,n=ghost,r=abc"));
    const c = await auth.start(client).step(text("n,,n=other,r=abc"));
    assert.equal(a.kind, "continue");
    const salt = (s: AuthStep) => str((s as { data: Uint8Array }).data).split(",")[1];
    assert.equal(salt(a), salt(b));
    assert.notEqual(salt(a), salt(c));
    assert.match(str((a as { data: Uint8Array }).data), /^r=abcS,s=[A-Za-z0-9+/]{22}==,i=4096$/);
  });
});

describe("SCRAM-SHA-256 through the broker", () => {
  test(
    "CONNECT → AUTH → AUTH → CONNACK with server-final; lists reach the client",
    TIMEOUT,
    async () => {
      const { broker, connected } = await scramBroker();
      const c = new PacketClient(broker, 5);
      const sc = new ScramClient("alice", "secret");
      const ack = await scramConnect(c, sc);
      assert.equal(ack.reasonCode, 0);
      assert.equal(ack.properties?.authenticationMethod, M);
      assert.ok(sc.verify(str(ack.properties!.authenticationData!)), "server signature checks out");
      assert.equal(connected[0].username, "alice");
      assert.deepEqual(connected[0].authorizedSub, ["s/#"]);
      assert.deepEqual(connected[0].authorizedPub, ["p/#"]);

      // Re-authentication on the live connection ends with AUTH 0x00 and a server signature.
      const again = new ScramClient("alice", "secret");
      sendAuth(c, 0x19, again.first());
      const challenge = await c.expect(15);
      assert.equal(challenge.reasonCode, 0x18);
      sendAuth(c, 0x18, await again.final(str(challenge.properties!.authenticationData!)));
      const done = await c.expect(15);
      assert.equal(done.reasonCode, 0x00);
      assert.ok(again.verify(str(done.properties!.authenticationData!)));

      // Still connected: a PINGREQ is answered.
      c.send({ type: 12 });
      await c.expect(13);
    },
  );

  test("a wrong password gets CONNACK 0x86 and the connection closes", TIMEOUT, async () => {
    const { broker, connected } = await scramBroker();
    const c = new PacketClient(broker, 5);
    const ack = await scramConnect(c, new ScramClient("alice", "secret"), "Secret");
    assert.equal(ack.reasonCode, 0x86);
    await c.expectClosed();
    assert.equal(connected.length, 0);
  });

  test("an unknown user runs the whole exchange, then 0x86", TIMEOUT, async () => {
    const { broker } = await scramBroker();
    const c = new PacketClient(broker, 5);
    const ack = await scramConnect(c, new ScramClient("mallory", "secret"));
    assert.equal(ack.reasonCode, 0x86);
    await c.expectClosed();
  });

  test("a User Name in CONNECT must be the SCRAM user", TIMEOUT, async () => {
    const { broker } = await scramBroker();
    const c = new PacketClient(broker, 5);
    sendConnect(c, new ScramClient("alice", "secret").first(), "bob");
    assert.equal((await c.expect(2)).reasonCode, 0x86);
    await c.expectClosed();
  });

  test(
    "re-authenticating with a wrong password, or as someone else, disconnects",
    TIMEOUT,
    async () => {
      const { broker } = await scramBroker({
        users: [
          {
            username: "alice",
            password: formatCredential(await hashPassword("secret")),
            authorizedSub: [],
            authorizedPub: [],
          },
          {
            username: "bob",
            password: formatCredential(await hashPassword("bobpw")),
            authorizedSub: [],
            authorizedPub: [],
          },
        ],
      });
      const c1 = new PacketClient(broker, 5);
      assert.equal((await scramConnect(c1, new ScramClient("alice", "secret"))).reasonCode, 0);
      const wrong = new ScramClient("alice", "secret");
      sendAuth(c1, 0x19, wrong.first());
      const ch = await c1.expect(15);
      sendAuth(c1, 0x18, await wrong.final(str(ch.properties!.authenticationData!), "nope"));
      assert.equal((await c1.expect(14)).reasonCode, 0x87);
      await c1.expectClosed();

      // Bob's valid credentials cannot turn alice's connection into bob's.
      const c2 = new PacketClient(broker, 5);
      assert.equal((await scramConnect(c2, new ScramClient("alice", "secret"))).reasonCode, 0);
      sendAuth(c2, 0x19, new ScramClient("bob", "bobpw").first());
      assert.equal((await c2.expect(14)).reasonCode, 0x87);
      await c2.expectClosed();
    },
  );

  test("the connect rate limit applies to SCRAM exchanges: 0x9F", TIMEOUT, async () => {
    const { broker } = await scramBroker({ connectRatePerMinute: 1 }, () => 5_000);
    const c1 = new PacketClient(broker, 5);
    assert.equal((await scramConnect(c1, new ScramClient("alice", "secret"))).reasonCode, 0);
    const c2 = new PacketClient(broker, 5);
    sendConnect(c2, new ScramClient("alice", "secret").first());
    assert.equal((await c2.expect(2)).reasonCode, 0x9f);
    await c2.expectClosed();
  });

  test("without built-in users the method is not offered: 0x8C", async () => {
    const plugin = await createAuthPlugin({ ...defaultConfig().auth, allowAnonymous: false }, {
      log: () => {},
      readTextFile: () => Promise.reject(new Error("none")),
    });
    const broker = newBroker({ hooks: [plugin!.hooks] });
    const c = new PacketClient(broker, 5);
    sendConnect(c, new ScramClient("alice", "secret").first());
    assert.equal((await c.expect(2)).reasonCode, 0x8c);
    await c.expectClosed();
  });
});
