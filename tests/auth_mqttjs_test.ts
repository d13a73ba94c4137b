/**
 * Interop: MQTT.js against a broker started from config with authentication
 * on — built-in users, an HTTP service on loopback, anonymous access off —
 * over real sockets, plus SCRAM-SHA-256 through MQTT.js's enhanced-auth hook.
 */
import { after, afterEach, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import * as http from "node:http";
import type { AddressInfo } from "node:net";
import { Buffer } from "node:buffer";
import mqtt from "mqtt";
import type { IClientOptions, IConnackPacket, MqttClient } from "mqtt";
import { startBroker, type TestBroker } from "./helpers/harness.ts";
import { Clients, uid, withTimeout } from "./helpers/mqttjs.ts";
import { ScramClient } from "./helpers/scram_client.ts";
import { formatCredential, hashPassword } from "../src/auth/mod.ts";

const TIMEOUT = { timeout: 20_000 };
type IAuthPacket = Parameters<MqttClient["handleAuth"]>[0];

let broker: TestBroker | undefined;
let service: http.Server;
const clients = new Clients(() => broker!.url);

before(async () => {
  // The service accepts "svc" with password "ok", and gives it one publish filter.
  service = http.createServer((req, res) => {
    let body = "";
    req.on("data", (d) => (body += d));
    req.on("end", () => {
      const { username, password } = JSON.parse(body);
      if (username === "svc" && password === "ok") {
        res.writeHead(200, { "content-type": "application/json" });
        res.end(JSON.stringify({ authorizedPub: ["svc/#"] }));
      } else res.writeHead(403).end();
    });
  });
  await new Promise<void>((resolve) => service.listen(0, "127.0.0.1", resolve));
  const port = (service.address() as AddressInfo).port;
  broker = await startBroker({
    auth: {
      allowAnonymous: false,
      users: [{
        username: "alice",
        password: formatCredential(await hashPassword("wonderland")),
        authorizedSub: [],
        authorizedPub: [],
      }],
      url: `http://127.0.0.1:${port}/auth`,
    },
  });
});

afterEach(() => clients.closeAll());

after(async () => {
  await clients.closeAll();
  await broker?.stop();
  service.closeAllConnections();
  await new Promise<void>((resolve) => service.close(() => resolve()));
});

/** Connect and expect a refusal; returns MQTT.js's error code (the CONNACK code). */
async function refused(opts: IClientOptions): Promise<number | undefined> {
  const err = await clients.connect(opts).then(
    () => assert.fail("connected, but should have been refused"),
    (e: Error & { code?: number }) => e,
  );
  return err.code;
}

for (const v of [4, 5] as const) {
  const bad = v === 5 ? 0x86 : 4;
  const anon = v === 5 ? 0x87 : 5;
  describe(`MQTT.js ${v === 5 ? "5.0" : "3.1.1"} with authentication`, () => {
    test("a built-in user with the right password connects", TIMEOUT, async () => {
      if (broker!.external) return;
      const c = await clients.connect({
        protocolVersion: v,
        clientId: uid(),
        username: "alice",
        password: "wonderland",
      });
      assert.equal(c.client.connected, true);
    });

    test("a wrong password, an unknown user and no username are refused", TIMEOUT, async () => {
      if (broker!.external) return;
      const base = { protocolVersion: v, clientId: uid() };
      assert.equal(await refused({ ...base, username: "alice", password: "nope" }), bad);
      assert.equal(await refused({ ...base, username: "eve", password: "x" }), bad);
      assert.equal(await refused(base), anon);
    });

    test("the HTTP service vouches for its own users", TIMEOUT, async () => {
      if (broker!.external) return;
      const base = { protocolVersion: v, clientId: uid() };
      const c = await clients.connect({ ...base, username: "svc", password: "ok" });
      assert.equal(c.client.connected, true);
      assert.equal(await refused({ ...base, username: "svc", password: "no" }), bad);
    });
  });
}

describe("MQTT.js 5.0 with SCRAM-SHA-256", () => {
  /** Connect with SCRAM via MQTT.js's handleAuth; resolves with the CONNACK or the error. */
  function scramConnect(scram: ScramClient, password?: string) {
    const client = mqtt.connect(broker!.url, {
      protocolVersion: 5,
      clientId: uid(),
      reconnectPeriod: 0,
      connectTimeout: 5000,
      properties: {
        authenticationMethod: "SCRAM-SHA-256",
        authenticationData: Buffer.from(scram.first()),
      },
    });
    client.handleAuth = (packet: IAuthPacket, done) => {
      const serverFirst = String(packet.properties?.authenticationData ?? "");
      scram.final(serverFirst, password).then(
        (final) =>
          done(undefined, {
            cmd: "auth",
            reasonCode: 0x18,
            properties: {
              authenticationMethod: "SCRAM-SHA-256",
              authenticationData: Buffer.from(final),
            },
          }),
        (e) => done(e),
      );
    };
    const result = new Promise<IConnackPacket | Error>((resolve) => {
      client.once("connect", resolve);
      client.once("error", resolve);
      client.once("close", () => resolve(new Error("closed before CONNACK")));
    });
    return { client, result: withTimeout(result, "SCRAM CONNACK") };
  }

  const open: MqttClient[] = [];
  afterEach(async () => {
    for (const c of open.splice(0)) {
      await withTimeout(new Promise<void>((r) => c.end(true, () => r())), "end").catch(() => {});
    }
  });

  test(
    "the exchange completes and the server proves it knows the credential",
    TIMEOUT,
    async () => {
      if (broker!.external) return;
      const scram = new ScramClient("alice", "wonderland");
      const { client, result } = scramConnect(scram);
      open.push(client);
      const connack = await result;
      assert.ok(!(connack instanceof Error), String(connack));
      assert.equal(connack.properties?.authenticationMethod, "SCRAM-SHA-256");
      assert.ok(scram.verify(String(connack.properties?.authenticationData)));
    },
  );

  test("a wrong password is refused with 0x86", TIMEOUT, async () => {
    if (broker!.external) return;
    const { client, result } = scramConnect(new ScramClient("alice", "wonderland"), "guess");
    open.push(client);
    const err = await result;
    assert.ok(err instanceof Error);
    assert.equal((err as Error & { code?: number }).code, 0x86);
  });
});
