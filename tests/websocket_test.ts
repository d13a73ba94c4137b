/**
 * MQTT over WebSocket on the runtime that runs this file: ws:// (the
 * runtime's own server: Deno.serve / Bun.serve) and wss:// (the TLS listener
 * with our RFC 6455 server, src/transport/websocket_server.ts). MQTT.js over
 * both; a raw WebSocket client for what MQTT.js does not do: packets split
 * over frames and messages, several packets per frame, ping, text frames,
 * wrong path, non-upgrade requests, subprotocol choice.
 */
import { after, afterEach, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import * as net from "node:net";
import * as tls from "node:tls";
import { Buffer } from "node:buffer";
import { mustRun } from "./helpers/harness.ts";
import { webSocketMessageLimit } from "../src/transport/listeners.ts";
import {
  makePki,
  opensslAvailable,
  startTestApp,
  type TestApp,
  type TestPki,
} from "./helpers/certs.ts";
import { Clients, connectPacket, publish, subscribe, uid, withTimeout } from "./helpers/mqttjs.ts";

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
  { name: "ws:// (runtime WebSocket server)", secure: false },
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

// --- a raw WebSocket client -------------------------------------------------

interface Frame {
  fin: boolean;
  opcode: number;
  payload: Uint8Array;
}

class RawWs {
  private buf = new Uint8Array(0);
  private waiters = new Set<() => void>();
  closed = false;
  status = 0;
  head = "";
  private upgraded = false;
  readonly frames: Frame[] = [];

  private constructor(private readonly socket: net.Socket) {
    socket.on("data", (d: Uint8Array) => {
      this.buf = Buffer.concat([this.buf, d]);
      this.parse();
      for (const w of [...this.waiters]) w();
    });
    socket.on("error", () => {});
    socket.on("close", () => {
      this.closed = true;
      for (const w of [...this.waiters]) w();
    });
  }

  static async open(
    port: number,
    secure: boolean,
    request: { path?: string; protocol?: string | null; upgrade?: boolean } = {},
  ): Promise<RawWs> {
    const socket = await withTimeout(
      new Promise<net.Socket>((resolve, reject) => {
        const s: net.Socket = secure
          ? tls.connect({ host: "127.0.0.1", port, ca: pki!.read(pki!.caFile) }, () => resolve(s))
          : net.connect({ host: "127.0.0.1", port }, () => resolve(s));
        s.once("error", reject);
      }),
      "connect",
    );
    const ws = new RawWs(socket);
    raws.push(ws);
    const lines = [`GET ${request.path ?? "/mqtt"} HTTP/1.1`, `Host: 127.0.0.1:${port}`];
    if (request.upgrade !== false) {
      lines.push(
        "Upgrade: websocket",
        "Connection: Upgrade",
        `Sec-WebSocket-Key: ${
          Buffer.from(crypto.getRandomValues(new Uint8Array(16))).toString("base64")
        }`,
        "Sec-WebSocket-Version: 13",
      );
      const protocol = request.protocol === undefined ? "mqtt" : request.protocol;
      if (protocol !== null) lines.push(`Sec-WebSocket-Protocol: ${protocol}`);
    }
    socket.write(lines.join("\r\n") + "\r\n\r\n");
    await ws.until(() => ws.status !== 0, "HTTP response head");
    return ws;
  }

  /** Response header value (lower-case name). */
  header(name: string): string | undefined {
    const line = this.head.split("\r\n").find((l) => l.toLowerCase().startsWith(`${name}:`));
    return line?.slice(name.length + 1).trim();
  }

  /** Body of a non-101 answer, once the server closed. */
  async body(): Promise<string> {
    await this.until(() => this.closed, "server to close after answering");
    return new TextDecoder().decode(this.buf);
  }

  private parse(): void {
    if (!this.upgraded) {
      const end = Buffer.from(this.buf).indexOf("\r\n\r\n");
      if (end < 0) return;
      this.head = new TextDecoder().decode(this.buf.subarray(0, end));
      this.status = Number(this.head.split(" ")[1]);
      if (this.status !== 101) return; // keep the body in buf
      this.upgraded = true;
      this.buf = this.buf.slice(end + 4);
    }
    for (;;) {
      if (this.buf.length < 2) return;
      let len = this.buf[1] & 0x7f;
      let at = 2;
      if (len === 126) {
        if (this.buf.length < 4) return;
        len = (this.buf[2] << 8) | this.buf[3];
        at = 4;
      } else if (len === 127) {
        if (this.buf.length < 10) return;
        len = Number(new DataView(this.buf.buffer, this.buf.byteOffset).getBigUint64(2));
        at = 10;
      }
      if (this.buf.length < at + len) return;
      this.frames.push({
        fin: (this.buf[0] & 0x80) !== 0,
        opcode: this.buf[0] & 0x0f,
        payload: this.buf.slice(at, at + len),
      });
      this.buf = this.buf.slice(at + len);
    }
  }

  /** Send one masked frame. */
  send(opcode: number, payload: Uint8Array, fin = true): void {
    this.socket.write(encodeFrame(opcode, payload, fin));
  }

  write(bytes: Uint8Array): void {
    this.socket.write(bytes);
  }

  /** Concatenated payload of the binary/continuation frames received. */
  mqttBytes(): Uint8Array {
    return Buffer.concat(
      this.frames.filter((f) => f.opcode === 0 || f.opcode === 2).map((f) => f.payload),
    );
  }

  async until(pred: () => boolean, what: string, ms = 5000): Promise<void> {
    if (pred()) return;
    let done!: () => void;
    const ready = new Promise<void>((r) => (done = r));
    const check = () => pred() && done();
    this.waiters.add(check);
    try {
      await withTimeout(ready, what, ms);
    } finally {
      this.waiters.delete(check);
    }
  }

  /** Waits until the MQTT bytes received start with these packet types (high nibbles). */
  async packets(types: number[]): Promise<number[]> {
    const seen = () => packetTypes(this.mqttBytes());
    await this.until(
      () => types.every((t, i) => seen()[i] === t) || this.closed,
      `packets ${types.join(",")} (got ${seen().join(",")})`,
    );
    assert.deepEqual(seen().slice(0, types.length), types);
    return seen();
  }

  destroy(): void {
    this.socket.destroy();
  }
}

function encodeFrame(opcode: number, payload: Uint8Array, fin: boolean): Uint8Array {
  const n = payload.length;
  const head = n < 126 ? [n | 0x80] : n < 65536 ? [126 | 0x80, n >> 8, n & 0xff] : (() => {
    throw new Error("test frames stay small");
  })();
  const mask = crypto.getRandomValues(new Uint8Array(4));
  const out = new Uint8Array(1 + head.length + 4 + n);
  out[0] = (fin ? 0x80 : 0) | opcode;
  out.set(head, 1);
  out.set(mask, 1 + head.length);
  for (let i = 0; i < n; i++) out[1 + head.length + 4 + i] = payload[i] ^ mask[i & 3];
  return out;
}

/** Packet types (1 = CONNECT, 2 = CONNACK, 3 = PUBLISH, 9 = SUBACK...) in a byte stream. */
function packetTypes(b: Uint8Array): number[] {
  const out: number[] = [];
  let at = 0;
  while (at < b.length) {
    let len = 0;
    let mul = 1;
    let i = at + 1;
    for (; i < b.length; i++) {
      len += (b[i] & 0x7f) * mul;
      mul *= 128;
      if ((b[i] & 0x80) === 0) break;
    }
    if (i >= b.length || i + 1 + len > b.length) break;
    out.push(b[at] >> 4);
    at = i + 1 + len;
  }
  return out;
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
      const ws = await RawWs.open(portOf(a), kind.secure);
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

    test("several packets in one frame all work", T, async () => {
      const a = await start(kind);
      const ws = await RawWs.open(portOf(a), kind.secure);
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
      const ws = await RawWs.open(portOf(a), kind.secure);
      ws.send(0x2, connectPacket({ clientId: `text-${uid()}`, clean: true, keepAlive: 30 }));
      await ws.packets([2]);
      ws.send(0x1, new TextEncoder().encode("not binary"));
      await ws.until(() => ws.closed || ws.frames.some((f) => f.opcode === 0x8), "close");
    });

    // Bun buffers a whole message before handing it over: its size is bounded there (the
    // wss:// server streams frames, and Deno's ws:// has no such setting).
    const bunWs = !kind.secure && !("Deno" in globalThis);
    if (bunWs) {
      test(
        "Bun ws://: a message over the limit (1 MiB, or max-bytes-in-message) closes: 1009",
        T,
        async () => {
          const a = await start(kind);
          const ws = await RawWs.open(portOf(a), kind.secure);
          ws.send(0x2, connectPacket({ clientId: `big-${uid()}`, clean: true, keepAlive: 30 }));
          await ws.packets([2]);
          // Valid MQTT all the way (PINGREQs), only too much of it in one message.
          const pings = new Uint8Array(webSocketMessageLimit(8092) + 2);
          for (let i = 0; i < pings.length; i += 2) pings[i] = 0xc0;
          // One message in 60 KiB fragments (this test client only writes short frames).
          const step = 60 * 1024;
          for (let at = 0; at < pings.length; at += step) {
            ws.send(at === 0 ? 0x2 : 0x0, pings.subarray(at, at + step), at + step >= pings.length);
          }
          await ws.until(() => ws.closed || ws.frames.some((f) => f.opcode === 0x8), "close");
          const close = ws.frames.find((f) => f.opcode === 0x8);
          if (close) assert.equal((close.payload[0] << 8) | close.payload[1], 1009);
          assert.equal(webSocketMessageLimit(8092), 1024 * 1024);
          assert.equal(webSocketMessageLimit(4 * 1024 * 1024), 4 * 1024 * 1024);
        },
      );
    }

    test("another path gets 404", T, async () => {
      const a = await start(kind);
      const ws = await RawWs.open(portOf(a), kind.secure, { path: "/other" });
      assert.equal(ws.status, 404);
    });

    test("a request that is not an upgrade gets a short plain answer", T, async () => {
      const a = await start(kind);
      const ws = await RawWs.open(portOf(a), kind.secure, { upgrade: false });
      assert.equal(ws.status, 426);
      assert.match(ws.header("content-type") ?? "", /text\/plain/);
    });

    test(
      "an unknown subprotocol is refused; mqttv3.1,mqtt gets the first one offered",
      T,
      async () => {
        const a = await start(kind);
        const bad = await RawWs.open(portOf(a), kind.secure, { protocol: "wamp" });
        assert.equal(bad.status, 400);
        const both = await RawWs.open(portOf(a), kind.secure, { protocol: "mqttv3.1, mqtt" });
        assert.equal(both.status, 101);
        assert.equal(both.header("sec-websocket-protocol"), "mqttv3.1");
        const none = await RawWs.open(portOf(a), kind.secure, { protocol: null });
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
