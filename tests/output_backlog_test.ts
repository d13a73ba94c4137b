/**
 * A client that sends and never reads costs the broker a bounded amount of
 * memory: the broker stops reading a connection whose replies pile up
 * (READ_PAUSE_BYTES), and other clients are served meanwhile.
 */
import { afterEach, describe, test } from "node:test";
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { startTestApp, type TestApp } from "./helpers/certs.ts";
import { bytesOf, connectPacket, connectRaw, sleep } from "./helpers/raw_socket.ts";
import { READ_PAUSE_BYTES } from "../src/broker/connection.ts";
import type { Connection } from "../src/broker/connection.ts";
import { PacketDecoder } from "../src/mqtt/decoder.ts";
import type { Packet } from "../src/mqtt/packet.ts";
import type * as net from "node:net";

let app: TestApp | undefined;
const sockets: net.Socket[] = [];
afterEach(async () => {
  for (const s of sockets.splice(0)) s.destroy();
  await app?.stop();
  app = undefined;
});

const T = { timeout: 60_000 };
const MB = 1024 * 1024;

function find(a: TestApp, clientId: string): Connection | undefined {
  for (const c of a.app.broker.connections) if (c.clientId === clientId) return c;
}

/** Writes `bytes` in 64 KiB pieces as fast as the socket takes them, never reading. */
async function flood(s: net.Socket, bytes: Uint8Array): Promise<void> {
  for (let at = 0; at < bytes.length; at += 65536) {
    if (!s.write(bytes.subarray(at, at + 65536))) {
      await new Promise((r) => s.once("drain", r));
    }
  }
}

/** A well-behaved client: subscribes, publishes QoS 1 to itself, gets it back. */
async function roundTrip(port: number): Promise<void> {
  const s = await connectRaw(port);
  sockets.push(s);
  const decoder = new PacketDecoder();
  const seen: Packet[] = [];
  s.on("data", (d: Buffer) => decoder.feed(new Uint8Array(d), (p) => seen.push(p)));
  s.write(connectPacket("fine"));
  s.write(bytesOf([
    { type: 8, packetId: 1, subscriptions: [{ topicFilter: "ok/#", qos: 1 }] },
    {
      type: 3,
      topic: "ok/1",
      payload: Buffer.from("hi"),
      qos: 1,
      retain: false,
      dup: false,
      packetId: 2,
    },
  ], 4));
  for (let i = 0; i < 200 && !seen.some((p) => p.type === 3); i++) await sleep(50);
  assert.ok(seen.some((p) => p.type === 3), `the other client got ${seen.map((p) => p.type)}`);
}

describe("output backlog of a client that does not read", () => {
  for (const what of ["PINGREQ", "QoS 1 PUBLISH"]) {
    test(`${what} flood: the broker's pending output stays bounded`, T, async () => {
      app = await startTestApp({});
      const port = app.app.ports.socket!;
      const s = await connectRaw(port);
      sockets.push(s);
      s.pause(); // never read
      s.write(connectPacket("flood"));
      for (let i = 0; i < 100 && !find(app, "flood")?.connected; i++) await sleep(20);
      const conn = find(app, "flood")!;
      assert.ok(conn, "the flooding client connected");
      const one = what === "PINGREQ" ? bytesOf([{ type: 12 }], 4) : bytesOf([{
        type: 3,
        topic: "f",
        payload: new Uint8Array(0),
        qos: 1,
        retain: false,
        dup: false,
        packetId: 7,
      }], 4);
      // 16 MiB of replies if the broker read it all.
      const count = Math.ceil((16 * MB) / 4);
      const bytes = Buffer.alloc(one.length * count);
      for (let i = 0; i < count; i++) bytes.set(one, i * one.length);
      let max = 0;
      let sampling = true;
      const sampler = (async () => {
        while (sampling) {
          max = Math.max(max, conn.pendingOutputBytes);
          await sleep(10);
        }
      })();
      flood(s, bytes).catch(() => {});
      await sleep(3000);
      await roundTrip(port);
      sampling = false;
      await sampler;
      assert.ok(max > 0, "the broker queued replies");
      assert.ok(
        max <= READ_PAUSE_BYTES + 512 * 1024,
        `pending output reached ${max} bytes (bound ${READ_PAUSE_BYTES})`,
      );
    });
  }
});
