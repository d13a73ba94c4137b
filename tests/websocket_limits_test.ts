/**
 * ws:// costs the broker bounded memory and closes cleanly, whatever the peer
 * does: input that the broker is not reading yet is bounded (the server stops
 * reading the socket); a frame larger than max-bytes-in-message allows is
 * refused without being buffered; an unmasked client frame is a protocol error
 * (1002, RFC 6455 5.1); a peer that ignores the close frame, or sends its
 * upgrade request a byte at a time, still loses its socket.
 */
import { afterEach, describe, test } from "node:test";
import assert from "node:assert/strict";
import net from "node:net";
import process from "node:process";
import { testRuntime } from "./helpers/harness.ts";
import { startTestApp, type TestApp } from "./helpers/certs.ts";
import { encodeFrame, RawWs } from "./helpers/raw_ws.ts";
import { connectPacket } from "./helpers/mqttjs.ts";
import { sleep } from "./helpers/raw_socket.ts";
import { listenWebSocket } from "../src/transport/listeners.ts";
import type { Listener, TransportConn as Conn } from "../src/runtime/types.ts";

const T = { timeout: 60_000 };
const MB = 1024 * 1024;
const raws: RawWs[] = [];
const apps: TestApp[] = [];
let listener: Listener | undefined;
const held: Conn[] = [];
afterEach(async () => {
  for (const r of raws.splice(0)) r.destroy();
  for (const c of held.splice(0)) c.close();
  await listener?.close();
  listener = undefined;
  for (const a of apps.splice(0)) await a.stop();
});

async function startWs(extra: Record<string, unknown> = {}): Promise<TestApp> {
  const a = await startTestApp({ websocket: { enable: true, port: 0, path: "/mqtt" }, ...extra });
  apps.push(a);
  return a;
}

/** The close code of the server's close frame, if one came. */
function closeCode(ws: RawWs): number | undefined {
  const f = ws.frames.find((f) => f.opcode === 8);
  return f && f.payload.length >= 2 ? (f.payload[0] << 8) | f.payload[1] : undefined;
}

/** Writes `chunk` until 64 MiB went, the socket closed or `backlog` bytes wait unsent; then 1 s. */
async function offer(ws: RawWs, chunk: Uint8Array, backlog: number): Promise<number> {
  let offered = 0;
  while (offered < 64 * MB && !ws.closed && ws.socket.writableLength < backlog) {
    ws.write(chunk);
    offered += chunk.length;
    if (ws.socket.writableLength > backlog / 4) await sleep(20);
  }
  await sleep(1000);
  return offered;
}

describe("ws:// limits", () => {
  test("input the broker does not read is bounded", T, async () => {
    // A Conn nobody reads: the MQTT side is held back (e.g. by its own output backlog).
    const runtime = await testRuntime();
    listener = await listenWebSocket(
      runtime,
      { hostname: "127.0.0.1", port: 0, path: "/mqtt" },
      (c) => void held.push(c),
    );
    const ws = await RawWs.open(listener.port, {}, raws);
    assert.equal(ws.status, 101);
    const frame = encodeFrame(2, new Uint8Array(64 * 1024), true);
    // Up to 64 MiB offered; the client's own buffer keeps what the server does not take.
    const offered = await offer(ws, frame, 16 * MB);
    const unsent = ws.socket.writableLength;
    // The server stopped reading the socket: the rest waits in the client.
    assert.ok(
      !ws.closed && unsent >= 8 * MB,
      `offered ${offered}, still unsent ${unsent}, closed ${ws.closed}, close code ${
        closeCode(ws)
      }`,
    );
  });

  test(
    "a frame over max-bytes-in-message closes the connection without buffering it",
    T,
    async () => {
      const a = await startWs({ maxBytesInMessage: 8092 });
      const ws = await RawWs.open(a.app.ports.websocket!, {}, raws);
      ws.send(2, connectPacket({ clientId: "big", clean: true, keepAlive: 0 }));
      await ws.until(() => ws.frames.some((f) => f.opcode === 2), "CONNACK");
      // A 64 MiB binary frame carrying one 64 MiB PUBLISH; 2 MiB of it are sent.
      const total = 64 * MB;
      const publishHead = Uint8Array.of(0x30, 0x80, 0x80, 0x80, 0x20, 0, 1, 0x74); // remaining 64 MiB
      ws.write(encodeFrame(2, publishHead, true, { length: total }));
      const chunk = new Uint8Array(64 * 1024);
      for (let sent = 0; sent < 2 * MB && !ws.closed; sent += chunk.length) {
        ws.write(chunk); // more payload of the same frame
      }
      await ws.until(() => ws.closed, "the broker to close the connection", 10_000);
    },
  );

  test(
    "a frame larger than the message limit is streamed or refused, never buffered",
    T,
    async () => {
      const a = await startWs({ maxBytesInMessage: 8092 });
      const ws = await RawWs.open(a.app.ports.websocket!, {}, raws);
      ws.send(2, connectPacket({ clientId: "pings", clean: true, keepAlive: 0 }));
      await ws.until(() => ws.frames.some((f) => f.opcode === 2), "CONNACK");
      // One 10 MiB frame of PINGREQs, of which 1 MiB is sent: a server that buffers whole
      // messages answers nothing; ours streams and answers PINGRESPs.
      const pings = new Uint8Array(MB);
      for (let i = 0; i < pings.length; i += 2) pings[i] = 0xc0;
      ws.write(encodeFrame(2, pings, true, { length: 10 * MB }));
      await ws.until(
        () => ws.closed || ws.mqttBytes().length > 4,
        "PINGRESPs or a close",
        10_000,
      );
      assert.ok(
        ws.mqttBytes().length > 4,
        `got ${ws.mqttBytes().length} bytes, close code ${closeCode(ws)}`,
      );
    },
  );

  test("an unmasked client frame is closed with 1002", T, async () => {
    const a = await startWs();
    const ws = await RawWs.open(a.app.ports.websocket!, {}, raws);
    ws.write(encodeFrame(2, connectPacket({ clientId: "bare", clean: true, keepAlive: 0 }), true, {
      masked: false,
    }));
    await ws.until(() => ws.closed || closeCode(ws) !== undefined, "a close frame", 10_000);
    assert.equal(closeCode(ws), 1002);
    assert.ok(!ws.frames.some((f) => f.opcode === 2), "no CONNACK for an unmasked frame");
  });

  test("pings whose pongs are never read do not pile up in the broker", T, async () => {
    const a = await startWs();
    const ws = await RawWs.open(a.app.ports.websocket!, {}, raws);
    ws.send(2, connectPacket({ clientId: "pinger", clean: true, keepAlive: 0 }));
    await ws.until(() => ws.frames.some((f) => f.opcode === 2), "CONNACK");
    ws.socket.pause(); // the pongs are never read
    const rss0 = process.memoryUsage().rss;
    const ping = encodeFrame(9, new Uint8Array(125), true);
    const batch = new Uint8Array(ping.length * 512);
    for (let i = 0; i < 512; i++) batch.set(ping, i * ping.length);
    const offered = await offer(ws, batch, 8 * MB);
    const unsent = ws.socket.writableLength;
    const grew = process.memoryUsage().rss - rss0;
    // The broker stops reading while its pongs wait (the pings back up in the client), closes
    // the connection, or reads on and answers no more pongs than its output holds: 64 MiB of
    // pings never become a queued pong each (~1.4 KB of memory per ping: +700 MB before this
    // was fixed).
    assert.ok(
      ws.closed || unsent >= 4 * MB || (offered >= 64 * MB && grew < 128 * MB),
      `offered ${offered}, still unsent ${unsent}, closed ${ws.closed}, rss +${grew >> 20} MB`,
    );
  });

  test("a connection closed at the WebSocket layer is logged with the reason", T, async () => {
    const a = await startWs();
    const ws = await RawWs.open(a.app.ports.websocket!, {}, raws);
    ws.send(2, connectPacket({ clientId: "texter", clean: true, keepAlive: 0 }));
    await ws.until(() => ws.frames.some((f) => f.opcode === 2), "CONNACK");
    ws.send(1, new TextEncoder().encode("hello"));
    await ws.until(() => closeCode(ws) !== undefined, "a close frame", 10_000);
    assert.equal(closeCode(ws), 1003);
    await ws.until(
      () => a.log.some((l) => /closing client texter .*text frame/.test(l)),
      "the log line",
    );
  });

  test("peers that ignore the close frame lose their sockets soon", T, async () => {
    // heartbeat: the time to send CONNECT; these peers send nothing and answer no close frame.
    const a = await startWs({ heartbeat: 500 });
    const peers = await Promise.all(
      Array.from({ length: 20 }, () => RawWs.open(a.app.ports.websocket!, {}, raws)),
    );
    // Not a timing assertion: a socket still open after 8 s counts as held.
    for (const p of peers) await p.until(() => p.closed, "the broker to close the socket", 8_000);
  });
});

describe("ws:// before the upgrade", () => {
  test(
    "a peer that dribbles its upgrade request loses its socket when heartbeat runs out",
    T,
    async () => {
      // heartbeat: the time a new connection has to get as far as CONNECT, the upgrade included.
      const a = await startWs({ heartbeat: 1_000 });
      const socket = net.connect(a.app.ports.websocket!, "127.0.0.1");
      let closed = false;
      socket.on("close", () => (closed = true)).on("error", () => {});
      await new Promise((r) => socket.once("connect", r));
      const head = "GET /mqtt HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n";
      // One byte every 200 ms: never idle long, never done. Not a timing assertion: a socket
      // still open after 8 s counts as held.
      for (let i = 0; i < 40 && !closed; i++) {
        socket.write(head[i % head.length]);
        await sleep(200);
      }
      socket.destroy();
      assert.ok(closed, `the dribbling peer still had its socket after 8 s: ${a.log.join(" | ")}`);
      assert.ok(
        a.log.some((l) => /closing .*no WebSocket upgrade request in time/.test(l)),
        `no log line saying why: ${a.log.join(" | ")}`,
      );
    },
  );
});
