/**
 * Seeded pseudo-random inputs (fixed seed, so failures reproduce): random
 * bytes and mutated table packets. The decoder may only ever throw
 * MqttSyntaxError, and whatever it accepts must survive encode → decode.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { CASES } from "./codec_table.ts";
import { PacketDecoder } from "./decoder.ts";
import { encode } from "./encoder.ts";
import { MqttSyntaxError } from "./errors.ts";
import type { Packet, ProtocolVersion } from "./packet.ts";

/** mulberry32: small, fast, deterministic. */
function rng(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const KNOWN_CODES = new Set([0x81, 0x82, 0x90, 0x94, 0x95]);

function mutate(rand: () => number, src: Uint8Array): Uint8Array {
  const b = [...src];
  const int = (n: number) => Math.floor(rand() * n);
  const edits = 1 + int(3);
  for (let i = 0; i < edits; i++) {
    switch (int(5)) {
      case 0: // flip bits
        if (b.length) b[int(b.length)] ^= 1 << int(8);
        break;
      case 1: // random byte
        if (b.length) b[int(b.length)] = int(256);
        break;
      case 2: // truncate
        b.length = int(b.length + 1);
        break;
      case 3: // insert
        b.splice(int(b.length + 1), 0, int(256));
        break;
      default: // delete
        if (b.length) b.splice(int(b.length), 1);
    }
  }
  return new Uint8Array(b);
}

function feedAll(d: PacketDecoder, input: Uint8Array, split: number): Packet[] {
  const out: Packet[] = [];
  if (split <= 0 || split >= input.length) d.feed(input, (p) => out.push(p));
  else {
    d.feed(input.subarray(0, split), (p) => out.push(p));
    d.feed(input.subarray(split), (p) => out.push(p));
  }
  return out;
}

function roundTrip(p: Packet, v: ProtocolVersion): void {
  if (p.type === 1) {
    if (![3, 4, 5].includes(p.protocolVersion)) return; // unsupported level: not re-encodable
    v = p.protocolVersion;
  }
  const d = new PacketDecoder();
  d.version = v;
  const again: Packet[] = [];
  d.feed(encode(p, v), (q) => again.push(q));
  assert.deepEqual(again, [p]);
}

test("fuzz: the decoder throws only MqttSyntaxError, and accepted packets round-trip", () => {
  const rand = rng(0x5eed);
  const int = (n: number) => Math.floor(rand() * n);
  const versions = [undefined, 3, 4, 5] as const;
  let accepted = 0, rejected = 0;
  for (let i = 0; i < 6000; i++) {
    let input: Uint8Array;
    if (i % 3 === 0) {
      // Random bytes with a plausible remaining length so bodies get parsed.
      const body = new Uint8Array(int(40)).map(() => int(256));
      input = new Uint8Array([int(256), body.length, ...body]);
    } else {
      input = mutate(rand, CASES[int(CASES.length)].bytes);
    }
    const version = versions[int(4)];
    const d = new PacketDecoder({ maximumPacketSize: int(4) === 0 ? 24 : undefined });
    d.version = version;
    let packets: Packet[];
    try {
      packets = feedAll(d, input, int(input.length + 1));
    } catch (e) {
      if (!(e instanceof MqttSyntaxError)) {
        assert.fail(`input #${i} [${input}] threw ${e}`);
      }
      assert.ok(KNOWN_CODES.has(e.reasonCode), `reason code 0x${e.reasonCode.toString(16)}`);
      rejected++;
      continue;
    }
    for (const p of packets) {
      roundTrip(p, d.version ?? 4);
      accepted++;
    }
  }
  // The corpus must exercise both outcomes, or the test proves nothing.
  assert.ok(accepted > 200, `accepted ${accepted}`);
  assert.ok(rejected > 2000, `rejected ${rejected}`);
});
