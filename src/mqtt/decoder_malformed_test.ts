/**
 * Every rule the decoder enforces, one test each, asserting the reason code
 * the broker will use (0x81 malformed, 0x82 protocol error, ...).
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { bin, pkt, props, str, u16, u32, vbi } from "./codec_table.ts";
import { PacketDecoder } from "./decoder.ts";
import { MqttSyntaxError } from "./errors.ts";
import type { Packet, ProtocolVersion } from "./packet.ts";

function decode(bytes: Uint8Array, version?: ProtocolVersion, max?: number): Packet[] {
  const d = new PacketDecoder({ maximumPacketSize: max });
  d.version = version;
  const out: Packet[] = [];
  d.feed(bytes, (p) => out.push(p));
  return out;
}

function rejects(bytes: Uint8Array, code: number, version?: ProtocolVersion, match?: RegExp) {
  assert.throws(
    () => decode(bytes, version),
    (e: unknown) => {
      assert.ok(e instanceof MqttSyntaxError, `not an MqttSyntaxError: ${e}`);
      assert.equal(e.reasonCode, code, e.message);
      assert.match(e.message, match ?? /^Cannot decode /);
      return true;
    },
  );
}

const connect4 = (flags: number, ...rest: (number | number[])[]) =>
  pkt(0x10, str("MQTT"), 4, flags, u16(0), str("c"), ...rest);
const connect5 = (...rest: (number | number[])[]) =>
  pkt(0x10, str("MQTT"), 5, 0x02, u16(0), ...rest);
const publish5 = (...p: (number | number[])[]) => pkt(0x30, str("t"), props(...p));

const MALFORMED: [name: string, bytes: Uint8Array, code: number, version?: ProtocolVersion][] = [
  // Fixed header
  ["remaining length with a 5th byte", new Uint8Array([0x30, 0xff, 0xff, 0xff, 0xff, 0x7f]), 0x81],
  ["packet type 0", pkt(0x00), 0x81, 4],
  ["AUTH before 5.0", pkt(0xf0), 0x81, 4],
  ["CONNECT with flags 0001", pkt(0x11, str("MQTT"), 4, 2, u16(0), str("c")), 0x81],
  ["PUBACK with flags 0010", pkt(0x42, u16(1)), 0x81, 4],
  ["PUBREL with flags 0000", pkt(0x60, u16(1)), 0x81, 4],
  ["SUBSCRIBE with flags 0000", pkt(0x80, u16(1), str("a"), 0), 0x81, 4],
  ["UNSUBSCRIBE with flags 0011", pkt(0xa3, u16(1), str("a")), 0x81, 4],
  ["PINGREQ with flags 1000", pkt(0xc8), 0x81, 4],
  ["DISCONNECT with flags 0001", pkt(0xe1), 0x81, 5],
  ["PUBLISH QoS 3", pkt(0x36, str("t"), u16(1)), 0x81, 4],
  ["PUBLISH QoS 0 with DUP", pkt(0x38, str("t")), 0x81, 4],
  // CONNECT
  ["CONNECT unknown protocol name", pkt(0x10, str("MQTX"), 4, 2, u16(0), str("c")), 0x81],
  ["CONNECT reserved flag", connect4(0x03), 0x81],
  ["CONNECT will QoS without will flag", connect4(0x08), 0x81],
  ["CONNECT will retain without will flag", connect4(0x20), 0x81],
  ["CONNECT will QoS 3", connect4(0x1c, str("w"), bin([])), 0x81],
  ["CONNECT password without user name (3.1.1)", connect4(0x40, bin([1])), 0x81],
  ["CONNECT truncated client id", pkt(0x10, str("MQTT"), 4, 2, u16(0), u16(5), 0x61), 0x81],
  [
    "CONNECT overlong UTF-8 NUL in client id",
    pkt(0x10, str("MQTT"), 4, 2, u16(0), u16(2), 0xc0, 0x80),
    0x81,
  ],
  ["CONNECT U+0000 in client id", pkt(0x10, str("MQTT"), 4, 2, u16(0), u16(1), 0x00), 0x81],
  [
    "CONNECT UTF-16 surrogate in client id",
    pkt(0x10, str("MQTT"), 4, 2, u16(0), u16(3), 0xed, 0xa0, 0x80),
    0x81,
  ],
  ["CONNECT trailing byte", connect4(0x02, 0x00), 0x81],
  ["CONNECT will topic with wildcard", connect4(0x04, str("a/#"), bin([])), 0x90],
  ["CONNECT empty will topic", connect4(0x04, str(""), bin([])), 0x90],
  ["CONNECT 5.0 will property on CONNECT", connect5(props(0x18, u32(1)), str("c")), 0x81],
  // CONNACK
  ["CONNACK reserved ack flags", pkt(0x20, 0x02, 0x00), 0x81, 4],
  ["CONNACK 3.1.1 return code 6", pkt(0x20, 0x00, 0x06), 0x81, 4],
  ["CONNACK 5.0 reason code 0x01", pkt(0x20, 0x00, 0x01, props()), 0x81, 5],
  // Packet identifier 0 [MQTT-2.3.1-1]
  ["PUBLISH QoS 1 packet id 0", pkt(0x32, str("t"), u16(0)), 0x81, 4],
  ["PUBACK packet id 0", pkt(0x40, u16(0)), 0x81, 4],
  ["PUBREC packet id 0", pkt(0x50, u16(0)), 0x81, 5],
  ["PUBREL packet id 0", pkt(0x62, u16(0)), 0x81, 4],
  ["PUBCOMP packet id 0", pkt(0x70, u16(0)), 0x81, 4],
  ["SUBSCRIBE packet id 0", pkt(0x82, u16(0), str("a"), 0), 0x81, 4],
  ["SUBACK packet id 0", pkt(0x90, u16(0), 0), 0x81, 4],
  ["UNSUBSCRIBE packet id 0", pkt(0xa2, u16(0), str("a")), 0x81, 4],
  ["UNSUBACK packet id 0", pkt(0xb0, u16(0)), 0x81, 4],
  // PUBLISH topic
  ["PUBLISH topic with +", pkt(0x30, str("a/+")), 0x90, 4],
  ["PUBLISH topic with #", pkt(0x30, str("a/#"), props()), 0x90, 5],
  ["PUBLISH topic not UTF-8", pkt(0x30, u16(1), 0xff), 0x81, 4],
  ["PUBLISH topic with U+0000", pkt(0x30, u16(3), 0x61, 0x00, 0x62), 0x81, 4],
  ["PUBLISH empty topic 3.1.1", pkt(0x30, str(""), 0x61), 0x81, 4],
  ["PUBLISH empty topic 5.0 without topic alias", pkt(0x30, str(""), props()), 0x82, 5],
  ["PUBLISH topic alias 0", publish5(0x23, u16(0)), 0x94, 5],
  ["PUBLISH topic length past the packet", pkt(0x30, u16(10), 0x61, 0x62), 0x81, 4],
  // SUBSCRIBE / UNSUBSCRIBE
  ["SUBSCRIBE without filters", pkt(0x82, u16(1)), 0x81, 4],
  ["SUBSCRIBE 5.0 without filters", pkt(0x82, u16(1), props()), 0x81, 5],
  ["SUBSCRIBE requested QoS 3", pkt(0x82, u16(1), str("a"), 3), 0x81, 4],
  ["SUBSCRIBE 3.1.1 reserved option bits", pkt(0x82, u16(1), str("a"), 0x04), 0x81, 4],
  ["SUBSCRIBE 5.0 reserved option bits", pkt(0x82, u16(1), props(), str("a"), 0x40), 0x81, 5],
  // "It is a Protocol Error to send a Retain Handling value of 3" (5.0, 3.8.3.1)
  ["SUBSCRIBE 5.0 retain handling 3", pkt(0x82, u16(1), props(), str("a"), 0x30), 0x82, 5],
  ["SUBSCRIBE empty filter", pkt(0x82, u16(1), str(""), 0), 0x81, 4],
  ["SUBSCRIBE filter without options byte", pkt(0x82, u16(1), str("a")), 0x81, 4],
  ["UNSUBSCRIBE without filters", pkt(0xa2, u16(1)), 0x81, 4],
  ["UNSUBSCRIBE empty filter", pkt(0xa2, u16(1), str("")), 0x81, 4],
  ["SUBACK 3.1.1 return code 0x87", pkt(0x90, u16(1), 0x87), 0x81, 4],
  ["SUBACK 5.0 reason code 0x03", pkt(0x90, u16(1), props(), 0x03), 0x81, 5],
  ["SUBACK without codes", pkt(0x90, u16(1)), 0x81, 4],
  ["UNSUBACK 5.0 without codes", pkt(0xb0, u16(1), props()), 0x81, 5],
  // Properties
  ["property not allowed on the packet", publish5(0x11, u32(1)), 0x81, 5],
  ["property appearing twice", publish5(0x02, u32(1), 0x02, u32(2)), 0x82, 5],
  ["unknown property identifier", publish5(0x7f, 0), 0x81, 5],
  ["property length past the packet", pkt(0x30, str("t"), vbi(9), 0x02, u32(1)), 0x81, 5],
  ["property running past the property length", pkt(0x30, str("t"), 3, 0x02, u32(1)), 0x81, 5],
  [
    "subscription identifier of 5 bytes",
    pkt(0x82, u16(1), props(0x0b, 0x80, 0x80, 0x80, 0x80, 0x01), str("a"), 0),
    0x81,
    5,
  ],
  ["subscription identifier 0", pkt(0x82, u16(1), props(0x0b, 0), str("a"), 0), 0x82, 5],
  [
    "subscription identifier twice in SUBSCRIBE",
    pkt(0x82, u16(1), props(0x0b, 1, 0x0b, 2), str("a"), 0),
    0x82,
    5,
  ],
  ["payload format indicator 2", publish5(0x01, 2), 0x82, 5],
  ["receive maximum 0", connect5(props(0x21, u16(0)), str("c")), 0x82],
  ["maximum packet size 0", connect5(props(0x27, u32(0)), str("c")), 0x82],
  ["response topic with wildcard", publish5(0x08, str("r/+")), 0x82, 5],
  ["user property missing its value", publish5(0x26, str("k")), 0x81, 5],
  ["property length of 5 bytes", pkt(0x30, str("t"), 0x80, 0x80, 0x80, 0x80, 0x01), 0x81, 5],
  // Reason codes
  ["PUBACK 5.0 reason code 0x05", pkt(0x40, u16(1), 0x05), 0x81, 5],
  ["PUBREL 5.0 reason code 0x10", pkt(0x62, u16(1), 0x10), 0x81, 5],
  ["DISCONNECT 5.0 reason code 0x01", pkt(0xe0, 0x01), 0x81, 5],
  ["AUTH reason code 0x01", pkt(0xf0, 0x01), 0x81, 5],
  // Lengths
  ["PUBACK 3.1.1 with a trailing byte", pkt(0x40, u16(1), 0), 0x81, 4],
  ["PUBACK truncated", pkt(0x40, 0x01), 0x81, 4],
  ["UNSUBACK 3.1.1 with a trailing byte", pkt(0xb0, u16(1), 0), 0x81, 4],
  ["PINGREQ with remaining length 1", pkt(0xc0, 0), 0x81, 4],
  ["PINGRESP with remaining length 1", pkt(0xd0, 0), 0x81, 5],
  ["DISCONNECT 3.1.1 with remaining length 1", pkt(0xe0, 0), 0x81, 4],
  ["DISCONNECT 5.0 with trailing bytes after properties", pkt(0xe0, 0, props(), 0), 0x81, 5],
];

describe("malformed packets", () => {
  for (const [name, bytes, code, version] of MALFORMED) {
    test(`${name} → 0x${code.toString(16)}`, () => rejects(bytes, code, version));
  }
});

describe("maximum packet size", () => {
  test("is checked as soon as the remaining length is known → 0x95", () => {
    const d = new PacketDecoder({ maximumPacketSize: 10 });
    // Only the fixed header of an 11-byte packet: the body is never needed.
    assert.throws(() => d.feed(new Uint8Array([0x30, 9]), () => {}), (e: unknown) => {
      assert.ok(e instanceof MqttSyntaxError);
      assert.equal(e.reasonCode, 0x95);
      return true;
    });
  });

  test("accepts a packet of exactly the maximum size", () => {
    const bytes = pkt(0x30, str("t"), [1, 2, 3, 4, 5]); // 2 + 3 + 5 = 10 bytes
    assert.equal(bytes.length, 10);
    assert.equal(decode(bytes, 4, 10).length, 1);
  });

  test("is mutable between packets", () => {
    const d = new PacketDecoder();
    d.version = 4;
    const bytes = pkt(0x30, str("t"), [1, 2, 3, 4, 5]);
    d.feed(bytes, () => {});
    d.maximumPacketSize = 9;
    assert.throws(() => d.feed(bytes, () => {}), /maximum packet size/);
  });
});

test("the decoder stays failed after an error", () => {
  const d = new PacketDecoder();
  d.version = 4;
  assert.throws(() => d.feed(pkt(0xc0, 0), () => {}), MqttSyntaxError);
  assert.throws(() => d.feed(pkt(0xc0), () => {}), MqttSyntaxError);
});

test("packets before a malformed one in the same chunk are delivered", () => {
  const d = new PacketDecoder();
  d.version = 4;
  const got: Packet[] = [];
  const chunk = new Uint8Array([...pkt(0xc0), ...pkt(0xd0), ...pkt(0x00)]);
  assert.throws(() => d.feed(chunk, (p) => got.push(p)), MqttSyntaxError);
  assert.deepEqual(got, [{ type: 12 }, { type: 13 }]);
});

test("error offset points into the packet", () => {
  try {
    decode(pkt(0x82, u16(1), str("a"), 3), 4);
    assert.fail("no error");
  } catch (e) {
    assert.ok(e instanceof MqttSyntaxError);
    assert.equal(e.offset, 8); // header 2 + packet id 2 + filter 3 + options byte
    assert.equal(e.message, "Cannot decode SUBSCRIBE: requested QoS is 3");
  }
});

describe("CONNECT with an unsupported protocol level is returned, not thrown", () => {
  test("MQTT level 6 → protocolVersion 6, rest read as 3.1.1", () => {
    const d = new PacketDecoder();
    const got: Packet[] = [];
    d.feed(pkt(0x10, str("MQTT"), 6, 0x82, u16(5), str("cid"), str("u")), (p) => got.push(p));
    assert.deepEqual(got, [{
      type: 1,
      protocolName: "MQTT",
      protocolVersion: 6 as ProtocolVersion,
      clean: true,
      keepAlive: 5,
      clientId: "cid",
      username: "u",
    }]);
    assert.equal(d.version, undefined);
  });

  test("MQTT level 3 (name of 3.1.1, level of 3.1) → protocolVersion 0", () => {
    const [p] = decode(pkt(0x10, str("MQTT"), 3, 0x02, u16(0), str("c")));
    assert.equal(p.type === 1 && p.protocolVersion, 0);
  });

  test("MQIsdp level 4 → protocolVersion 0", () => {
    const [p] = decode(pkt(0x10, str("MQIsdp"), 4, 0x02, u16(0), str("c")));
    assert.equal(p.type === 1 && p.protocolVersion, 0);
  });

  test("an unparseable rest still yields the packet", () => {
    const [p] = decode(pkt(0x10, str("MQTT"), 7, 0xff));
    assert.equal(p.type, 1);
    assert.equal(p.type === 1 && p.protocolVersion, 7);
  });
});

test("CONNECT 3.1 password without user name is malformed", () => {
  rejects(pkt(0x10, str("MQIsdp"), 3, 0x40, u16(0), str("c"), bin([1])), 0x81);
});

test("CONNECT name and level are read before any version is known", () => {
  rejects(pkt(0x10, u16(4), 0x4d, 0x51), 0x81); // truncated protocol name
});
