// Authentication rules from `auth.*` config, driven through packets: built-in users, the password
// file, anonymous access, the connect rate limit, and the default (everyone accepted).
import { afterEach, describe, test } from "node:test";
import assert from "node:assert/strict";
import { closeAll, newBroker, PacketClient, text } from "./helpers/packet_client.ts";
import { defaultConfig } from "../src/config/schema.ts";
import type { MqttxConfig } from "../src/config/types.ts";
import type { BrokerHooks, ClientInfo } from "../src/broker/hooks.ts";
import type { ConnectPacket, ProtocolVersion } from "../src/mqtt/packet.ts";
import {
  type AuthDeps,
  createAuthPlugin,
  formatCredential,
  hashPassword,
} from "../src/auth/mod.ts";
import { ConnectRateLimiter, rateKey, sourceAddress } from "../src/auth/rate_limit.ts";
import { parsePasswordFile } from "../src/auth/users.ts";

afterEach(closeAll);

type Auth = MqttxConfig["auth"];
const TIMEOUT = { timeout: 20_000 };

function authConfig(over: Partial<Auth> = {}): Auth {
  return { ...defaultConfig().auth, ...over };
}

const hash = async (pw: string) => formatCredential(await hashPassword(pw));

/** A broker with the auth plugin for `over`, plus an observer that records accepted clients. */
async function brokerWith(over: Partial<Auth>, deps: Partial<AuthDeps> = {}) {
  const logs: string[] = [];
  const plugin = await createAuthPlugin(authConfig(over), {
    log: (l) => logs.push(l),
    readTextFile: () => Promise.reject(new Error("no files here")),
    ...deps,
  });
  assert.ok(plugin, "a plugin is built for this config");
  const connected: ClientInfo[] = [];
  const broker = newBroker({
    hooks: [plugin.hooks, { onConnected: (c) => void connected.push(c) }],
  });
  return { broker, connected, logs };
}

/** CONNECT and return the CONNACK reason/return code. */
async function connectCode(
  broker: ReturnType<typeof newBroker>,
  version: ProtocolVersion,
  opts: Partial<ConnectPacket> = {},
): Promise<number> {
  const c = new PacketClient(broker, version);
  c.send({
    type: 1,
    protocolName: version === 3 ? "MQIsdp" : "MQTT",
    protocolVersion: version,
    clean: true,
    keepAlive: 0,
    clientId: "c" + Math.random().toString(36).slice(2, 8),
    ...opts,
  });
  const ack = await c.expect(2);
  if (ack.reasonCode !== 0) await c.expectClosed();
  return ack.reasonCode;
}

describe("auth: built-in users", () => {
  test("right password accepted, wrong or missing refused 0x86 (3.1.1: 4)", TIMEOUT, async () => {
    const { broker, connected } = await brokerWith({
      users: [{
        username: "alice",
        password: await hash("wonderland"),
        authorizedSub: ["a/#"],
        authorizedPub: ["a/%c"],
      }],
    });
    const alice = { username: "alice", password: text("wonderland") };
    assert.equal(await connectCode(broker, 4, { ...alice, clientId: "al" }), 0);
    assert.equal(await connectCode(broker, 5, alice), 0);
    assert.equal(await connectCode(broker, 3, alice), 0);
    // The user's lists are handed to authorization with the client.
    assert.deepEqual(connected[0].authorizedSub, ["a/#"]);
    assert.deepEqual(connected[0].authorizedPub, ["a/%c"]);
    assert.equal(connected[0].username, "alice");

    const wrong = { username: "alice", password: text("wonderlanD") };
    assert.equal(await connectCode(broker, 5, wrong), 0x86);
    assert.equal(await connectCode(broker, 4, wrong), 4);
    assert.equal(await connectCode(broker, 3, wrong), 4);
    assert.equal(await connectCode(broker, 5, { username: "alice" }), 0x86);
    assert.equal(connected.length, 3);
  });

  test("an unknown user is refused 0x86 when built-in users exist", async () => {
    const { broker } = await brokerWith({
      users: [{
        username: "alice",
        password: await hash("pw"),
        authorizedSub: [],
        authorizedPub: [],
      }],
    });
    assert.equal(await connectCode(broker, 5, { username: "bob", password: text("pw") }), 0x86);
    assert.equal(await connectCode(broker, 4, { username: "bob", password: text("pw") }), 4);
    // allow-anonymous (default true) still lets clients without a username in.
    assert.equal(await connectCode(broker, 5), 0);
  });

  test("the password file: users from `username:hash` lines", TIMEOUT, async () => {
    const file = `# users\n\nbob:${await hash("builder")}\ncarol:${await hash("c")}\n`;
    const { broker, connected } = await brokerWith({ passwordFile: "/etc/passwd-mqtt" }, {
      readTextFile: (path) => {
        assert.equal(path, "/etc/passwd-mqtt");
        return Promise.resolve(file);
      },
    });
    assert.equal(await connectCode(broker, 4, { username: "bob", password: text("builder") }), 0);
    assert.equal(await connectCode(broker, 4, { username: "carol", password: text("c") }), 0);
    assert.equal(await connectCode(broker, 4, { username: "bob", password: text("c") }), 4);
    assert.equal(await connectCode(broker, 4, { username: "dave", password: text("c") }), 4);
    assert.equal(connected[0].authorizedSub, undefined); // file users carry no lists
  });

  test("a config user wins over a file line of the same name", async () => {
    const file = `bob:${await hash("old")}\n`;
    const { broker } = await brokerWith({
      passwordFile: "f",
      users: [{
        username: "bob",
        password: await hash("new"),
        authorizedSub: [],
        authorizedPub: [],
      }],
    }, { readTextFile: () => Promise.resolve(file) });
    assert.equal(await connectCode(broker, 5, { username: "bob", password: text("new") }), 0);
    assert.equal(await connectCode(broker, 5, { username: "bob", password: text("old") }), 0x86);
  });

  test("a plain-text password, a bad file line or an unreadable file stops the start", async () => {
    const deps = { log: () => {}, readTextFile: () => Promise.resolve("bob:secret\n") };
    await assert.rejects(
      createAuthPlugin(
        authConfig({
          users: [{ username: "x", password: "secret", authorizedSub: [], authorizedPub: [] }],
        }),
        deps,
      ),
      /auth\.users\[0\] \(x\): password is not a SCRAM-SHA-256 hash/,
    );
    await assert.rejects(
      createAuthPlugin(authConfig({ passwordFile: "pw.txt" }), deps),
      /pw\.txt:1:/,
    );
    await assert.rejects(
      createAuthPlugin(authConfig({ passwordFile: "gone" }), {
        log: () => {},
        readTextFile: () => Promise.reject(new Error("not found")),
      }),
      /auth\.password-file: cannot read gone: not found/,
    );
    await assert.rejects(
      createAuthPlugin(authConfig({ url: "ftp://x/" }), deps),
      /auth\.url must be an http/,
    );
  });

  test("parsePasswordFile names the bad line", () => {
    assert.throws(() => parsePasswordFile("\n# c\nno-colon\n", "f"), /^Error: f:3:/);
    assert.throws(() => parsePasswordFile(":SCRAM-SHA-256$4096:AA==$AA==:AA==", "f"), /f:1:/);
  });
});

describe("auth: anonymous access", () => {
  test("allow-anonymous false refuses clients without a username: 0x87 (3.1.1: 5)", async () => {
    const { broker } = await brokerWith({
      allowAnonymous: false,
      users: [{ username: "u", password: await hash("p"), authorizedSub: [], authorizedPub: [] }],
    });
    assert.equal(await connectCode(broker, 5), 0x87);
    assert.equal(await connectCode(broker, 4), 5);
    assert.equal(await connectCode(broker, 5, { password: text("p") }), 0x87);
    assert.equal(await connectCode(broker, 5, { username: "u", password: text("p") }), 0);
  });

  test("with nothing to check names against, a username alone is anonymous", async () => {
    const { broker } = await brokerWith({ allowAnonymous: false });
    assert.equal(await connectCode(broker, 5, { username: "u", password: text("p") }), 0x87);
  });

  test("defaults: no plugin, everyone is accepted as before", async () => {
    const plugin = await createAuthPlugin(authConfig(), {
      log: () => {},
      readTextFile: () => Promise.reject(new Error("unused")),
    });
    assert.equal(plugin, undefined);
    const b = newBroker();
    assert.equal(await connectCode(b, 4, { username: "any", password: text("thing") }), 0);
  });
});

describe("auth: connect rate limit per source address", () => {
  test("past the budget 0x9F (3.1.1: 3); refills with time; every attempt counts", async () => {
    let now = 1_000_000;
    const { broker } = await brokerWith(
      {
        connectRatePerMinute: 3,
        users: [{ username: "u", password: await hash("p"), authorizedSub: [], authorizedPub: [] }],
      },
      { now: () => now },
    );
    // Failed attempts count too: that is what stops guessing.
    assert.equal(await connectCode(broker, 5, { username: "u", password: text("x") }), 0x86);
    assert.equal(await connectCode(broker, 5, { username: "u", password: text("y") }), 0x86);
    assert.equal(await connectCode(broker, 5, { username: "u", password: text("p") }), 0);
    assert.equal(await connectCode(broker, 5, { username: "u", password: text("p") }), 0x9f);
    assert.equal(await connectCode(broker, 4, { username: "u", password: text("p") }), 3);
    now += 20_000; // one attempt back every 60/3 s
    assert.equal(await connectCode(broker, 4, { username: "u", password: text("p") }), 0);
    assert.equal(await connectCode(broker, 4, { username: "u", password: text("p") }), 3);
  });

  test("sourceAddress drops the port and unwraps IPv6", () => {
    assert.equal(sourceAddress("127.0.0.1:50000"), "127.0.0.1");
    assert.equal(sourceAddress("[::1]:1883"), "::1");
    assert.equal(sourceAddress("[::FFFF:10.0.0.1]:5"), "10.0.0.1");
    assert.equal(sourceAddress("[FE80::1]:5"), "fe80::1");
    assert.equal(sourceAddress("unix"), "unix");
  });

  test("IPv6 sources are counted per /64 network, IPv4 per address", () => {
    assert.equal(rateKey("[2001:db8:1:2:3:4:5:6]:1"), "2001:db8:1:2::/64");
    assert.equal(rateKey("[2001:0DB8:0001:0002::9]:2"), "2001:db8:1:2::/64");
    assert.equal(rateKey("[2001:db8::1]:3"), "2001:db8:0:0::/64");
    assert.equal(rateKey("[::1]:4"), "0:0:0:0::/64");
    assert.equal(rateKey("[64:ff9b::1.2.3.4]:5"), "64:ff9b:0:0::/64");
    assert.equal(rateKey("[::ffff:10.0.0.1]:5"), "10.0.0.1");
    assert.equal(rateKey("10.0.0.1:7"), "10.0.0.1");
    assert.equal(rateKey("[fe80::1%eth0]:8"), "fe80:0:0:0::/64");
    assert.equal(rateKey("[1:2:3]:9"), "1:2:3"); // unreadable: counted as written

    // Rotating addresses inside one /64 does not buy more attempts.
    const limiter = new ConnectRateLimiter(2, () => 0);
    assert.equal(limiter.take("[2001:db8:1:2::a]:1"), true);
    assert.equal(limiter.take("[2001:db8:1:2::b]:1"), true);
    assert.equal(limiter.take("[2001:db8:1:2::c]:1"), false);
    assert.equal(limiter.take("[2001:db8:1:3::c]:1"), true); // another network
  });

  test("many distinct sources: limits still hold after the table is swept", () => {
    let now = 0;
    const limiter = new ConnectRateLimiter(1, () => now);
    for (let i = 0; i < 25_000; i++) limiter.take(`10.${i >> 16}.${(i >> 8) & 255}.${i & 255}:1`);
    assert.equal(limiter.take("10.0.0.5:2"), false); // still spent: not swept away
    now += 60_000;
    for (let i = 0; i < 25_000; i++) limiter.take(`11.${i >> 16}.${(i >> 8) & 255}.${i & 255}:1`);
    assert.equal(limiter.take("10.0.0.5:2"), true); // refilled (and possibly forgotten)
  });
});

describe("auth: a verified certificate as the credential (ssl.use-cn-as-username)", () => {
  /** A broker whose connections all carry a verified certificate with this CN. */
  async function certBroker(certificateIdentity: boolean) {
    const plugin = await createAuthPlugin(
      authConfig({
        allowAnonymous: false,
        users: [{
          username: "device-7",
          password: await hash("unused"),
          authorizedSub: ["cmd/7/#"],
          authorizedPub: ["data/7/#"],
        }],
      }),
      { log: () => {}, readTextFile: () => Promise.reject(new Error("none")), certificateIdentity },
    );
    const connected: ClientInfo[] = [];
    const withCert: BrokerHooks = {
      authenticate(c) {
        Object.assign(c, { certificate: { subject: "CN=device-7", commonName: "device-7" } });
        return undefined;
      },
    };
    const broker = newBroker({
      hooks: [withCert, plugin!.hooks, { onConnected: (c) => void connected.push(c) }],
    });
    return { broker, connected };
  }

  test("on: accepted without a password, with the CN user's topic rights", TIMEOUT, async () => {
    const { broker, connected } = await certBroker(true);
    assert.equal(await connectCode(broker, 5), 0);
    assert.equal(connected[0].username, "device-7");
    assert.deepEqual(connected[0].authorizedPub, ["data/7/#"]);
  });

  test("off: the certificate alone is not a credential (anonymous refused)", TIMEOUT, async () => {
    const { broker } = await certBroker(false);
    assert.equal(await connectCode(broker, 5), 0x87);
  });
});

test("a client accepted as anonymous keeps no unverified user name", TIMEOUT, async () => {
  // Auth is configured (a rate limit) but nothing can verify "admin": the name must not stick.
  const { broker, connected } = await brokerWith({ connectRatePerMinute: 100 });
  assert.equal(await connectCode(broker, 4, { username: "admin", password: text("guess") }), 0);
  assert.equal(connected[0].username, undefined);
});
