/**
 * A raw TCP peer for tests that must misbehave at the socket level (never
 * read, flood, half-close): node:net works the same on Deno and Bun.
 */
import * as net from "node:net";
import { Buffer } from "node:buffer";
import type { Packet, ProtocolVersion } from "../../src/mqtt/packet.ts";
import { encode } from "../../src/mqtt/encoder.ts";
import { PacketDecoder } from "../../src/mqtt/decoder.ts";

export function connectRaw(port: number, host = "127.0.0.1"): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ port, host }, () => resolve(s));
    s.once("error", reject);
  });
}

export function connectPacket(clientId: string, version: ProtocolVersion = 4): Uint8Array {
  return encode({
    type: 1,
    protocolName: "MQTT",
    protocolVersion: version,
    clean: true,
    keepAlive: 0,
    clientId,
  }, version);
}

export function bytesOf(packets: Packet[], version: ProtocolVersion): Uint8Array {
  return Buffer.concat(packets.map((p) => encode(p, version)));
}

/** Everything the peer sends until the socket closes (a reset counts as the end), decoded. */
export function packetsUntilClose(
  s: net.Socket,
  version: ProtocolVersion,
): Promise<{ packets: Packet[]; error?: Error }> {
  const decoder = new PacketDecoder();
  decoder.version = version;
  const packets: Packet[] = [];
  let error: Error | undefined;
  s.on("data", (d: Buffer) => {
    try {
      decoder.feed(new Uint8Array(d), (p) => packets.push(p));
    } catch (e) {
      error = e as Error;
    }
  });
  s.on("error", (e) => (error = e));
  return new Promise((resolve) => s.once("close", () => resolve({ packets, error })));
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
