/**
 * When the broker ends a 5.0 connection with a DISCONNECT reason, the client
 * reads it: the broker half-closes and drains what the client still sends,
 * instead of closing a socket with unread input (which resets it, and a reset
 * can discard the DISCONNECT before the client reads it).
 */
import { afterEach, describe, test } from "node:test";
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { startBroker, type TestBroker } from "./helpers/harness.ts";
import {
  bytesOf,
  connectPacket,
  connectRaw,
  packetsUntilClose,
  sleep,
} from "./helpers/raw_socket.ts";
import type { Packet } from "../src/mqtt/packet.ts";

let broker: TestBroker | undefined;
afterEach(async () => {
  await broker?.stop();
  broker = undefined;
});

const T = { timeout: 30_000 };

describe("DISCONNECT before close", () => {
  test("0x93 (Receive Maximum exceeded) reaches a client that keeps sending", T, async () => {
    broker = await startBroker({ maxInflight: 5 });
    const s = await connectRaw(broker.port);
    const result = packetsUntilClose(s, 5);
    s.pause(); // read nothing yet: the client is busy sending
    // CONNECT, then 6 QoS 2 PUBLISHes with no PUBREL (one over the Receive Maximum of 5),
    // then 2 MB more that the broker will not read before it closes.
    const publishes: Packet[] = [];
    for (let id = 1; id <= 6; id++) {
      publishes.push({
        type: 3,
        topic: "rm/x",
        payload: new Uint8Array(10),
        qos: 2,
        retain: false,
        dup: false,
        packetId: id,
      });
    }
    const filler: Packet[] = [];
    for (let i = 0; i < 100; i++) {
      filler.push({
        type: 3,
        topic: "rm/fill",
        payload: new Uint8Array(1000),
        qos: 0,
        retain: false,
        dup: false,
      });
    }
    s.write(connectPacket("rm", 5));
    await sleep(200);
    s.write(Buffer.concat([bytesOf(publishes, 5), bytesOf(filler, 5)]));
    await sleep(1000);
    s.resume();
    const { packets, error } = await result;
    const disconnect = packets.find((p) => p.type === 14);
    assert.ok(
      disconnect,
      `no DISCONNECT read (got ${packets.map((p) => p.type)}; ${error?.message ?? "no error"})`,
    );
    assert.equal((disconnect as { reasonCode: number }).reasonCode, 0x93);
  });
});
