// The HTTP authentication service (`auth.url`), against a tiny real HTTP server on loopback:
// accept (with topic lists), refuse, slow (timeout) and down, with and without `is-mandatory`.
import { after, afterEach, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import * as http from "node:http";
import type { AddressInfo } from "node:net";
import { closeAll, newBroker, PacketClient, text } from "./helpers/packet_client.ts";
import { defaultConfig } from "../src/config/schema.ts";
import type { MqttxConfig } from "../src/config/types.ts";
import type { ClientInfo } from "../src/broker/hooks.ts";
import type { ConnectPacket, ProtocolVersion } from "../src/mqtt/packet.ts";
import {
  type AuthPlugin,
  createAuthPlugin,
  formatCredential,
  hashPassword,
} from "../src/auth/mod.ts";

const TIMEOUT = { timeout: 20_000 };

/** What the service received. */
interface Seen {
  method?: string;
  path?: string;
  contentType?: string;
  body: Record<string, unknown>;
}

let server: http.Server;
let base = "";
let downUrl = "";
const seen: Seen[] = [];
/** Responses the "slow" route holds back until the test ends. */
const held: http.ServerResponse[] = [];
/** Responses the "flood" route leaves unfinished. */
const flooding: http.ServerResponse[] = [];

before(async () => {
  server = http.createServer((req, res) => {
    let body = "";
    req.on("data", (d) => (body += d));
    req.on("end", () => {
      seen.push({
        method: req.method,
        path: req.url,
        contentType: req.headers["content-type"],
        body: JSON.parse(body),
      });
      switch (req.url) {
        case "/accept":
          res.writeHead(200, { "content-type": "application/json" });
          res.end(JSON.stringify({ authorizedSub: ["s/%u/#"], authorizedPub: ["p/#"], extra: 1 }));
          return;
        case "/accept-empty":
          res.writeHead(200).end();
          return;
        case "/refuse":
          res.writeHead(401).end(JSON.stringify({ authorizedSub: ["#"] }));
          return;
        case "/slow":
          held.push(res);
          return;
        case "/flood":
          // 200, then more body than the broker reads, and never the end of it.
          res.writeHead(200, { "content-type": "application/json" });
          res.write("[" + " ".repeat(2 * 1024 * 1024));
          flooding.push(res);
          return;
        default:
          res.writeHead(404).end();
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  // A port that was just free: nothing listens there.
  const gone = http.createServer();
  await new Promise<void>((resolve) => gone.listen(0, "127.0.0.1", resolve));
  downUrl = `http://127.0.0.1:${(gone.address() as AddressInfo).port}/auth`;
  await new Promise<void>((resolve) => gone.close(() => resolve()));
});

const plugins: AuthPlugin[] = [];

afterEach(async () => {
  for (const p of plugins.splice(0)) p.stop();
  for (const r of held.splice(0)) r.writeHead(200).end();
  for (const r of flooding.splice(0)) r.end();
  seen.length = 0;
  await closeAll();
});

after(async () => {
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

type Auth = MqttxConfig["auth"];
async function brokerWith(over: Partial<Auth>) {
  const logs: string[] = [];
  const plugin = await createAuthPlugin({ ...defaultConfig().auth, ...over }, {
    log: (l) => logs.push(l),
    readTextFile: () => Promise.reject(new Error("none")),
  });
  plugins.push(plugin!);
  const connected: ClientInfo[] = [];
  const broker = newBroker({ hooks: [plugin!.hooks, { onConnected: (c) => connected.push(c) }] });
  return { broker, connected, logs };
}

async function connectCode(
  broker: ReturnType<typeof newBroker>,
  version: ProtocolVersion,
  opts: Partial<ConnectPacket> = {},
): Promise<number> {
  const c = new PacketClient(broker, version);
  c.send({
    type: 1,
    protocolName: "MQTT",
    protocolVersion: version,
    clean: true,
    keepAlive: 0,
    clientId: "h" + Math.random().toString(36).slice(2, 8),
    ...opts,
  });
  const ack = await c.expect(2, 5000);
  if (ack.reasonCode !== 0) await c.expectClosed();
  return ack.reasonCode;
}

const bob = { clientId: "bob-1", username: "bob", password: text("pässword") };

describe("auth: HTTP service", () => {
  test("200 accepts; the JSON body's lists reach the client", TIMEOUT, async () => {
    const { broker, connected } = await brokerWith({ url: `${base}/accept` });
    assert.equal(await connectCode(broker, 5, bob), 0);
    assert.deepEqual(seen, [{
      method: "POST",
      path: "/accept",
      contentType: "application/json",
      body: { clientId: "bob-1", username: "bob", password: "pässword" },
    }]);
    assert.equal(connected[0].username, "bob");
    assert.deepEqual(connected[0].authorizedSub, ["s/%u/#"]);
    assert.deepEqual(connected[0].authorizedPub, ["p/#"]);
  });

  test("200 with an empty body accepts without lists", TIMEOUT, async () => {
    const { broker, connected } = await brokerWith({ url: `${base}/accept-empty` });
    assert.equal(await connectCode(broker, 4, bob), 0);
    assert.equal(connected[0].authorizedSub, undefined);
  });

  test(
    "a body past 1 MiB is not read to its end: accepted at once, without lists",
    TIMEOUT,
    async () => {
      // Mandatory and a long read-timeout: waiting for the end would refuse, after 10 s.
      const { broker, connected } = await brokerWith({
        url: `${base}/flood`,
        isMandatory: true,
        readTimeout: 10_000,
      });
      const started = Date.now();
      assert.equal(await connectCode(broker, 5, bob), 0);
      assert.ok(Date.now() - started < 5000, "answered without waiting for the body to end");
      assert.equal(connected[0].authorizedSub, undefined);
    },
  );

  test("another status refuses: 0x86, 3.1.1 return code 4", TIMEOUT, async () => {
    const { broker, connected } = await brokerWith({ url: `${base}/refuse` });
    assert.equal(await connectCode(broker, 5, bob), 0x86);
    assert.equal(await connectCode(broker, 4, bob), 4);
    assert.equal(connected.length, 0);
  });

  test(
    "slow, mandatory: refused 0x88 (3.1.1: 3) after read-timeout; logged without password",
    TIMEOUT,
    async () => {
      const { broker, logs } = await brokerWith({
        url: `${base}/slow`,
        isMandatory: true,
        readTimeout: 200,
      });
      assert.equal(await connectCode(broker, 5, bob), 0x88);
      assert.equal(await connectCode(broker, 4, bob), 3);
      assert.equal(seen.length, 2, "the service was asked");
      assert.match(logs[0], /HTTP service http:\/\/127\.0\.0\.1:\d+\/slow failed for client bob-1/);
      assert.match(logs[0], /timed out/);
      assert.ok(!logs.join("\n").includes("pässword"));
    },
  );

  test("slow, not mandatory: treated as anonymous (allow-anonymous decides)", TIMEOUT, async () => {
    const open = await brokerWith({ url: `${base}/slow`, readTimeout: 200 });
    assert.equal(await connectCode(open.broker, 5, bob), 0);
    assert.equal(open.connected[0].authorizedSub, undefined);
    const closed = await brokerWith({
      url: `${base}/slow`,
      readTimeout: 200,
      allowAnonymous: false,
    });
    assert.equal(await connectCode(closed.broker, 5, bob), 0x87);
  });

  test("down, mandatory: 0x88; not mandatory: anonymous", TIMEOUT, async () => {
    const mandatory = await brokerWith({ url: downUrl, isMandatory: true });
    assert.equal(await connectCode(mandatory.broker, 5, bob), 0x88);
    assert.match(mandatory.logs[0], /failed for client bob-1/);
    const lenient = await brokerWith({ url: downUrl });
    assert.equal(await connectCode(lenient.broker, 5, bob), 0);
  });

  test(
    "built-in users are checked first; no username never reaches the service",
    TIMEOUT,
    async () => {
      const { broker } = await brokerWith({
        url: `${base}/refuse`,
        users: [{
          username: "alice",
          password: formatCredential(await hashPassword("pw")),
          authorizedSub: [],
          authorizedPub: [],
        }],
      });
      assert.equal(await connectCode(broker, 5, { username: "alice", password: text("pw") }), 0);
      assert.equal(await connectCode(broker, 5, { username: "alice", password: text("px") }), 0x86);
      assert.equal(await connectCode(broker, 5), 0); // anonymous, allowed by default
      assert.equal(seen.length, 0);
      assert.equal(await connectCode(broker, 5, bob), 0x86);
      assert.equal(seen.length, 1);
    },
  );

  test("stop() aborts a request in flight", TIMEOUT, async () => {
    const { broker } = await brokerWith({
      url: `${base}/slow`,
      isMandatory: true,
      readTimeout: 10_000,
    });
    const c = new PacketClient(broker, 5);
    c.send({
      type: 1,
      protocolName: "MQTT",
      protocolVersion: 5,
      clean: true,
      keepAlive: 0,
      ...bob,
    });
    for (let i = 0; held.length === 0; i++) {
      assert.ok(i < 500, "the service never got the request");
      await new Promise((r) => setTimeout(r, 10));
    }
    plugins[0].stop();
    assert.equal((await c.expect(2, 5000)).reasonCode, 0x88);
  });
});
