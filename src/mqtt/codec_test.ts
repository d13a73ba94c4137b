/**
 * The codec table in both directions: decode(bytes) = packet, encode(packet)
 * = bytes, at every protocol level an entry applies to, whole, one byte at a
 * time, split at every boundary, and all packets of a level in one chunk.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { CASES, pkt, str, u16 } from "./codec_table.ts";
import { PacketDecoder } from "./decoder.ts";
import { ackSize, encode, encodedLength, publishSize, writeAck, writePublish } from "./encoder.ts";
import { utf8Length } from "./utf8.ts";
import { RangePublish } from "./publish_range.ts";
import type { Packet, ProtocolVersion } from "./packet.ts";

function decoderFor(version: ProtocolVersion, packet?: Packet): PacketDecoder {
  const d = new PacketDecoder();
  // CONNECT sets the level itself; everything else needs it from the "connection".
  if (packet?.type !== 1) d.version = version;
  return d;
}

function decodeChunks(d: PacketDecoder, chunks: Uint8Array[]): Packet[] {
  const out: Packet[] = [];
  for (const c of chunks) d.feed(c, (p) => out.push(p));
  return out;
}

for (const c of CASES) {
  for (const v of c.versions) {
    describe(`${c.name} (level ${v})`, () => {
      test("decodes", () => {
        const got = decodeChunks(decoderFor(v, c.packet), [c.bytes]);
        assert.deepEqual(got, [c.packet]);
      });

      test("encodes", () => {
        assert.deepEqual(encode(c.packet, v), c.bytes);
        assert.equal(encodedLength(c.packet, v), c.bytes.length);
      });

      if (c.packet.type === 3) {
        const p = c.packet;
        test("writePublish (the delivery path) gives the same bytes", () => {
          const n = utf8Length(p.topic);
          const size = publishSize(v, n, p.payload.length, p.qos, p.properties);
          assert.equal(size, c.bytes.length);
          const out = new Uint8Array(size + 3);
          const end = writePublish(
            out,
            3,
            v,
            p.topic,
            n,
            p.payload,
            0,
            p.payload.length,
            p.qos,
            p.retain,
            p.dup,
            p.packetId ?? 0,
            p.properties,
          );
          assert.equal(end, size + 3);
          assert.deepEqual(out.subarray(3), c.bytes);
        });
      }
      if (c.packet.type === 3) {
        const p = c.packet;
        test("range mode (the broker's): same fields, payload made on demand", () => {
          for (const chunks of [[c.bytes], [...c.bytes].map((b) => new Uint8Array([b]))]) {
            const d = new PacketDecoder({ payloadRanges: true });
            d.version = v;
            const [got] = decodeChunks(d, chunks);
            assert.ok(got instanceof RangePublish);
            assert.equal(got.topic, p.topic);
            assert.equal(got.qos, p.qos);
            assert.equal(got.retain, p.retain);
            assert.equal(got.dup, p.dup);
            assert.equal(got.packetId, p.packetId);
            assert.deepEqual(got.properties, p.properties);
            assert.equal(got.payloadLength, p.payload.length);
            assert.deepEqual([...got.payload], [...p.payload]);
          }
        });
      }
      const ack = c.packet;
      if (
        (ack.type === 4 || ack.type === 5 || ack.type === 6 || ack.type === 7) &&
        (v !== 5 || ack.properties === undefined)
      ) {
        test("writeAck (no packet object) gives the same bytes", () => {
          const code = v === 5 ? ack.reasonCode ?? 0 : 0;
          assert.equal(ackSize(v, code), c.bytes.length);
          const out = new Uint8Array(8);
          assert.equal(writeAck(out, 1, v, ack.type, ack.packetId, code), 1 + c.bytes.length);
          assert.deepEqual(out.subarray(1, 1 + c.bytes.length), c.bytes);
        });
      }

      test("decodes one byte at a time", () => {
        const chunks = [...c.bytes].map((b) => new Uint8Array([b]));
        assert.deepEqual(decodeChunks(decoderFor(v, c.packet), chunks), [c.packet]);
      });

      test("decodes split at every boundary", () => {
        // The 20000-byte case is split at a sample of boundaries to stay quick.
        const step = c.bytes.length > 1000 ? 997 : 1;
        for (let i = 0; i <= c.bytes.length; i += step) {
          const chunks = [c.bytes.slice(0, i), c.bytes.slice(i)];
          assert.deepEqual(decodeChunks(decoderFor(v, c.packet), chunks), [c.packet], `split ${i}`);
        }
      });
    });
  }
}

for (const v of [3, 4, 5] as const) {
  test(`level ${v}: all table packets in one chunk, and in three pieces`, () => {
    const cases = CASES.filter((c) => c.versions.includes(v));
    const all = new Uint8Array(cases.reduce((n, c) => n + c.bytes.length, 0));
    let pos = 0;
    for (const c of cases) {
      all.set(c.bytes, pos);
      pos += c.bytes.length;
    }
    const want = cases.map((c) => c.packet);
    const d = new PacketDecoder();
    d.version = v;
    assert.deepEqual(decodeChunks(d, [all]), want);
    for (const [a, b] of [[1, 2], [7, 300], [50, all.length - 3], [5, 20010]]) {
      const parts = [all.slice(0, a), all.slice(a, b), all.slice(b)];
      const d2 = new PacketDecoder();
      d2.version = v;
      assert.deepEqual(decodeChunks(d2, parts), want, `pieces at ${a}, ${b}`);
    }
  });
}

test("a CONNECT sets the version for later packets in the same chunk", () => {
  const connect = pkt(0x10, str("MQTT"), 5, 0x02, u16(0), [0], str("c"));
  const puback = pkt(0x40, u16(1), 0x10, [0]); // 5.0 long form; malformed for 3.1.1
  const d = new PacketDecoder();
  const got = decodeChunks(d, [new Uint8Array([...connect, ...puback])]);
  assert.equal(d.version, 5);
  assert.deepEqual(got[1], { type: 4, packetId: 1, reasonCode: 0x10 });
});

test("a payload within one chunk is a view of the chunk, not a copy", () => {
  const chunk = pkt(0x30, str("t"), [1, 2, 3]);
  const [p] = decodeChunks(decoderFor(4), [chunk]);
  assert.equal(p.type, 3);
  if (p.type !== 3) return;
  assert.equal(p.payload.buffer, chunk.buffer);
  assert.deepEqual([...p.payload], [1, 2, 3]);
});

test("encode drops 5.0 fields for 3.1.1", () => {
  const publish: Packet = {
    type: 3,
    topic: "t",
    payload: new Uint8Array([1]),
    qos: 1,
    retain: false,
    dup: false,
    packetId: 2,
    properties: { messageExpiryInterval: 5 },
  };
  assert.deepEqual(encode(publish, 4), pkt(0x32, str("t"), u16(2), [1]));
  const puback: Packet = {
    type: 4,
    packetId: 2,
    reasonCode: 0x10,
    properties: { reasonString: "x" },
  };
  assert.deepEqual(encode(puback, 4), pkt(0x40, u16(2)));
  const disconnect: Packet = { type: 14, reasonCode: 0x8e };
  assert.deepEqual(encode(disconnect, 4), pkt(0xe0));
});

test("encode maps 5.0 SUBACK failure codes to 0x80 for 3.x", () => {
  const suback: Packet = { type: 9, packetId: 3, reasonCodes: [1, 0x87, 0xa2] };
  assert.deepEqual(encode(suback, 4), pkt(0x90, u16(3), [1, 0x80, 0x80]));
});

test("encode uses the short form for 5.0 acks with reason 0 and empty properties", () => {
  const puback: Packet = { type: 4, packetId: 2, reasonCode: 0, properties: {} };
  assert.deepEqual(encode(puback, 5), pkt(0x40, u16(2)));
  assert.deepEqual(encode({ type: 14, properties: {} }, 5), pkt(0xe0));
});

test("encodedLength matches a PUBLISH with a 4-byte remaining length", () => {
  const publish: Packet = {
    type: 3,
    topic: "big",
    payload: new Uint8Array(2_100_000),
    qos: 0,
    retain: false,
    dup: false,
  };
  const bytes = encode(publish, 5); // remaining length 2 + 3 + 1 + 2100000 = 2100006
  assert.equal(encodedLength(publish, 5), bytes.length);
  assert.deepEqual([...bytes.subarray(0, 5)], [0x30, 0xa6, 0x96, 0x80, 0x01]);
  assert.deepEqual(decodeChunks(decoderFor(5), [bytes]), [publish]);
});

test("writePublish copies a payload range, small (byte loop) or large, at any offset", () => {
  for (const size of [0, 1, 100, 512, 513, 3000]) {
    const payload = Uint8Array.from({ length: size }, (_, i) => (i * 7 + 3) & 0xff);
    const source = new Uint8Array(size + 50);
    source.set(payload, 37);
    const packet: Packet = {
      type: 3,
      topic: "r/x",
      payload,
      qos: 1,
      retain: true,
      dup: false,
      packetId: 9,
    };
    for (const v of [4, 5] as const) {
      const size0 = publishSize(v, 3, size, 1, undefined);
      const out = new Uint8Array(size0);
      writePublish(out, 0, v, "r/x", 3, source, 37, size, 1, true, false, 9, undefined);
      assert.deepEqual(out, encode(packet, v), `payload of ${size} bytes, level ${v}`);
    }
  }
});
