/**
 * MQTT over WebSocket on the runtime that runs this file: ws:// (our RFC 6455
 * server, src/transport/websocket_server.ts, over a TCP listener) and wss://
 * (the same over the TLS listener). MQTT.js over
 * both; a raw WebSocket client for what MQTT.js does not do: packets split
 * over frames and messages, several packets per frame, ping, text frames,
 * wrong path, non-upgrade requests, subprotocol choice.
 */
import { after, afterEach, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { mustRun } from "./helpers/harness.ts";
import {
  makePki,
  opensslAvailable,
  startTestApp,
  type TestApp,
  type TestPki,
} from "./helpers/certs.ts";
import { Clients, connectPacket, publish, subscribe, uid } from "./helpers/mqttjs.ts";
import { encodeFrame, packetTypes, RawWs } from "./helpers/raw_ws.ts";

const T = { timeout: 30_000 };
const haveOpenssl = opensslAvailable();

let pki: TestPki | undefined;
const apps: TestApp[] = [];
const clients = new Clients(() => "unused");
const raws: RawWs[] = [];

before(() => {
  if (haveOpenssl) pki = makePki();
});
afterEach(async () => {
  await clients.closeAll();
  for (const r of raws.splice(0)) r.destroy();
  for (const a of apps.splice(0)) await a.stop();
});
after(() => pki?.remove());

interface Kind {
  name: string;
  secure: boolean;
}
const KINDS: Kind[] = [
  { name: "ws:// (RFC 6455 over the TCP listener)", secure: false },
  { name: "wss:// (RFC 6455 over the TLS listener)", secure: true },
];

async function start(kind: Kind, extra: Record<string, unknown> = {}): Promise<TestApp> {
  const a = await startTestApp({
    websocket: { enable: true, port: 0, path: "/mqtt" },
    ...(kind.secure
      ? { ssl: { enable: true, certFile: pki!.server.cert, keyFile: pki!.server.key, ...extra } }
      : {}),
  });
  apps.push(a);
  return a;
}

/** A raw WebSocket client on this port (TLS with the test CA when `secure`). */
function openWs(
  port: number,
  secure: boolean,
  request: { path?: string; protocol?: string | null; upgrade?: boolean } = {},
): Promise<RawWs> {
  return RawWs.open(port, { ...request, ca: secure ? pki!.read(pki!.caFile) : undefined }, raws);
}

function subscribePacket(topic: string): Uint8Array {
  const t = new TextEncoder().encode(topic);
  const body = [0, 1, t.length >> 8, t.length & 0xff, ...t, 0];
  return Uint8Array.from([0x82, body.length, ...body]);
}

function publishPacket(topic: string, payload: string): Uint8Array {
  const t = new TextEncoder().encode(topic);
  const p = new TextEncoder().encode(payload);
  const body = [t.length >> 8, t.length & 0xff, ...t, ...p];
  return Uint8Array.from([0x30, body.length, ...body]);
}

// --- the tests ----------------------------------------------------------------

for (const kind of KINDS) {
  const skip = kind.secure && !haveOpenssl && !mustRun() ? "openssl not on PATH" : false;
  describe(`MQTT over ${kind.name}`, { skip }, () => {
    const portOf = (a: TestApp) => a.app.ports.websocket!;
    const url = (a: TestApp, path = "/mqtt") =>
      `${kind.secure ? "wss" : "ws"}://127.0.0.1:${portOf(a)}${path}`;
    const tlsOpts =
      () => (kind.secure ? { ca: pki!.read(pki!.caFile), rejectUnauthorized: true } : {});

    test("MQTT.js subscribes and receives; the start log names the URL", T, async () => {
      const a = await start(kind);
      assert.ok(a.log.some((l) => l.includes(`listening on ${url(a)} (`)), a.log.join("\n"));
      assert.equal(kind.secure ? a.app.ports.wss : undefined, kind.secure ? portOf(a) : undefined);
      const c = await clients.connect({
        ...tlsOpts(),
        host: "127.0.0.1",
        port: portOf(a),
        protocol: kind.secure ? "wss" : "ws",
        path: "/mqtt",
      });
      const topic = `ws/${uid()}`;
      await subscribe(c.client, topic, { qos: 1 });
      // And from a plain TCP client into the WebSocket one.
      const tcp = await clients.connect({
        host: "127.0.0.1",
        port: a.app.ports.socket!,
        protocol: kind.secure ? "mqtts" : "mqtt",
        ...tlsOpts(),
      });
      await publish(tcp.client, topic, "to the websocket", { qos: 1 });
      await c.inbox.payload("to the websocket");
    });

    test("MQTT.js 3.1 (subprotocol mqttv3.1) connects", T, async () => {
      const a = await start(kind);
      const c = await clients.connect({
        ...tlsOpts(),
        host: "127.0.0.1",
        port: portOf(a),
        protocol: kind.secure ? "wss" : "ws",
        path: "/mqtt",
        protocolVersion: 3,
        protocolId: "MQIsdp",
      });
      assert.equal(c.client.connected, true);
    });

    test("a 200 KB message goes through (16- and 64-bit frame lengths)", T, async () => {
      const a = await startTestApp({
        maxBytesInMessage: 1024 * 1024,
        websocket: { enable: true, port: 0 },
        ...(kind.secure
          ? { ssl: { enable: true, certFile: pki!.server.cert, keyFile: pki!.server.key } }
          : {}),
      });
      apps.push(a);
      const opts = {
        ...tlsOpts(),
        host: "127.0.0.1",
        port: portOf(a),
        protocol: kind.secure ? "wss" as const : "ws" as const,
        path: "/mqtt",
      };
      const c = await clients.connect(opts);
      const topic = `big/${uid()}`;
      await subscribe(c.client, topic, { qos: 1 });
      const big = "x".repeat(200 * 1024) + "end";
      await publish(c.client, topic, big, { qos: 1 });
      const got = await c.inbox.payload(big);
      assert.equal(got.payload.length, big.length);
    });

    test("a packet split over several frames (and messages) is reassembled", T, async () => {
      const a = await start(kind);
      const ws = await openWs(portOf(a), kind.secure);
      assert.equal(ws.status, 101);
      assert.equal(ws.header("sec-websocket-protocol"), "mqtt");
      const connect = connectPacket({ clientId: `frag-${uid()}`, clean: true, keepAlive: 30 });
      // One fragmented message: binary (no FIN), continuation, continuation (FIN).
      ws.send(0x2, connect.subarray(0, 3), false);
      ws.send(0x0, connect.subarray(3, 9), false);
      ws.send(0x0, connect.subarray(9), true);
      await ws.packets([2]);
      // A SUBSCRIBE in two separate binary messages, with a ping in between.
      const sub = subscribePacket("frag/t");
      ws.send(0x2, sub.subarray(0, 4));
      ws.send(0x9, new TextEncoder().encode("hi"));
      ws.send(0x2, sub.subarray(4));
      await ws.packets([2, 9]);
      await ws.until(() => ws.frames.some((f) => f.opcode === 0xa), "pong");
      assert.equal(
        new TextDecoder().decode(ws.frames.find((f) => f.opcode === 0xa)!.payload),
        "hi",
      );
    });

    test("frames read a byte at a time, and many in one read, all arrive", T, async () => {
      const a = await start(kind);
      const ws = await openWs(portOf(a), kind.secure);
      ws.socket.setNoDelay(true);
      // Every header and payload split over reads: one byte per write, a few ms apart.
      const connect = encodeFrame(
        0x2,
        connectPacket({ clientId: `bytes-${uid()}`, clean: true, keepAlive: 30 }),
        true,
      );
      for (const b of connect) {
        ws.write(Uint8Array.of(b));
        await new Promise((r) => setTimeout(r, 3));
      }
      await ws.packets([2]);
      // Then a SUBSCRIBE, 200 PUBLISHes and a ping, one frame each, in one write.
      const topic = `bytes/${uid()}`;
      const frames = [encodeFrame(0x2, subscribePacket(topic), true)];
      for (let i = 0; i < 200; i++) {
        frames.push(encodeFrame(0x2, publishPacket(topic, `m${i}`), true));
      }
      frames.push(encodeFrame(0x9, new TextEncoder().encode("hi"), true));
      ws.write(Buffer.concat(frames));
      const published = () => packetTypes(ws.mqttBytes()).filter((t) => t === 3).length;
      await ws.until(() => published() === 200, "200 messages back");
      await ws.until(() => ws.frames.some((f) => f.opcode === 0xa), "pong");
      const got = Buffer.from(ws.mqttBytes()).toString("latin1");
      let last = -1;
      for (let i = 0; i < 200; i++) {
        const at = got.indexOf(`${topic}m${i}`, last + 1); // (topic and payload are adjacent)
        assert.ok(at > last, `m${i} missing or out of order`);
        last = at;
      }
    });

    test("several packets in one frame all work", T, async () => {
      const a = await start(kind);
      const ws = await openWs(portOf(a), kind.secure);
      const topic = `multi/${uid()}`;
      const all = Buffer.concat([
        connectPacket({ clientId: `multi-${uid()}`, clean: true, keepAlive: 30 }),
        subscribePacket(topic),
        publishPacket(topic, "one frame"),
      ]);
      ws.send(0x2, all);
      await ws.packets([2, 9, 3]);
      assert.ok(Buffer.from(ws.mqttBytes()).includes("one frame"));
    });

    test("a text frame closes the connection [MQTT-6.0.0-1]", T, async () => {
      const a = await start(kind);
      const ws = await openWs(portOf(a), kind.secure);
      ws.send(0x2, connectPacket({ clientId: `text-${uid()}`, clean: true, keepAlive: 30 }));
      await ws.packets([2]);
      ws.send(0x1, new TextEncoder().encode("not binary"));
      await ws.until(() => ws.closed || ws.frames.some((f) => f.opcode === 0x8), "close");
    });

    test("another path gets 404", T, async () => {
      const a = await start(kind);
      const ws = await openWs(portOf(a), kind.secure, { path: "/other" });
      assert.equal(ws.status, 404);
    });

    test("a request that is not an upgrade gets a short plain answer", T, async () => {
      const a = await start(kind);
      const ws = await openWs(portOf(a), kind.secure, { upgrade: false });
      assert.equal(ws.status, 426);
      assert.match(ws.header("content-type") ?? "", /text\/plain/);
    });

    test(
      "an unknown subprotocol is refused; mqttv3.1,mqtt gets the first one offered",
      T,
      async () => {
        const a = await start(kind);
        const bad = await openWs(portOf(a), kind.secure, { protocol: "wamp" });
        assert.equal(bad.status, 400);
        const both = await openWs(portOf(a), kind.secure, { protocol: "mqttv3.1, mqtt" });
        assert.equal(both.status, 101);
        assert.equal(both.header("sec-websocket-protocol"), "mqttv3.1");
        const none = await openWs(portOf(a), kind.secure, { protocol: null });
        assert.equal(none.status, 101);
        assert.equal(none.header("sec-websocket-protocol"), undefined);
      },
    );
  });
}

describe("wss:// with client certificates", {
  skip: !haveOpenssl && !mustRun() ? "openssl not on PATH" : false,
}, () => {
  test(
    "REQUIRE: MQTT.js with a good certificate is accepted and identified; none is refused",
    T,
    async () => {
      const a = await start(KINDS[1], { clientAuth: "REQUIRE", caFile: pki!.caFile });
      const seen: string[] = [];
      a.app.broker.hooks.push({
        onConnected: (c) => void seen.push(c.certificate?.commonName ?? "-"),
      });
      const base = {
        host: "127.0.0.1",
        port: a.app.ports.wss!,
        protocol: "wss" as const,
        path: "/mqtt",
        ca: pki!.read(pki!.caFile),
      };
      await clients.connect({
        ...base,
        cert: pki!.read(pki!.client.cert),
        key: pki!.read(pki!.client.key),
      });
      assert.deepEqual(seen, ["alice"]);
      await assert.rejects(clients.connect(base));
    },
  );

  test("ws and wss side by side through the listeners list (8083 + 8084 style)", T, async () => {
    const a = await startTestApp({
      ssl: { certFile: pki!.server.cert, keyFile: pki!.server.key },
      listeners: [{ type: "ws", port: 0 }, { type: "wss", port: 0, path: "/secure" }],
    });
    apps.push(a);
    const [tcp, ws, wss] = a.app.ports.listeners;
    assert.deepEqual([tcp.type, ws.type, wss.type], ["tcp", "ws", "wss"]);
    assert.match(wss.url, /^wss:\/\/127\.0\.0\.1:\d+\/secure$/);
    const sub = await clients.connect({
      host: "127.0.0.1",
      port: ws.port,
      protocol: "ws",
      path: "/mqtt",
    });
    const pub = await clients.connect({
      host: "127.0.0.1",
      port: wss.port,
      protocol: "wss",
      path: "/secure",
      ca: pki!.read(pki!.caFile),
    });
    const topic = `both/${uid()}`;
    await subscribe(sub.client, topic);
    await publish(pub.client, topic, "wss to ws", { qos: 1 });
    await sub.inbox.payload("wss to ws");
  });
});
