/**
 * Test fixture (not used by the broker): byte-annotated packets for every
 * packet type and protocol level, used by the codec tests in both directions.
 * This file holds 3.1 / 3.1.1; codec_table_v5.ts holds 5.0.
 */
import { bin, type Case, pkt, raw, str, u16, u8a, vbi } from "./codec_bytes.ts";
import { CASES_V5 } from "./codec_table_v5.ts";

export * from "./codec_bytes.ts";

const big = new Uint8Array(20000).map((_, i) => i & 0xff);
const sub3 = { noLocal: false, retainAsPublished: false, retainHandling: 0 as const };

const CASES_V3: Case[] = [
  // ---------------------------------------------------------------- 3.1
  {
    name: "CONNECT 3.1 with will, user name and password",
    versions: [3],
    bytes: pkt(
      0x10, // CONNECT
      str("MQIsdp"), // protocol name
      3, // level
      0b11110110, // user, password, will retain, will QoS 2, will, clean session
      u16(30), // keep alive
      str("c31"), // client id
      str("w/t"), // will topic
      bin([0xde, 0xad]), // will payload
      str("u"), // user name
      bin([0x70, 0x77]), // password
    ),
    packet: {
      type: 1,
      protocolName: "MQIsdp",
      protocolVersion: 3,
      clean: true,
      keepAlive: 30,
      clientId: "c31",
      will: { topic: "w/t", payload: u8a([0xde, 0xad]), qos: 2, retain: true },
      username: "u",
      password: u8a([0x70, 0x77]),
    },
  },
  // ---------------------------------------------------------------- 3.1.1
  {
    name: "CONNECT 3.1.1 minimal",
    versions: [4],
    bytes: pkt(0x10, str("MQTT"), 4, 0b00000010, u16(60), str("")),
    packet: {
      type: 1,
      protocolName: "MQTT",
      protocolVersion: 4,
      clean: true,
      keepAlive: 60,
      clientId: "",
    },
  },
  {
    name: "CONNECT 3.1.1 with will QoS 1, user name only",
    versions: [4],
    bytes: pkt(
      0x10, // CONNECT
      str("MQTT"), // protocol name
      4, // level
      0b10001100, // user, will QoS 1, will; not clean
      u16(0),
      str("client-ä"), // non-ASCII client id
      str("last/will"),
      bin([]), // empty will payload
      str("üser"),
    ),
    packet: {
      type: 1,
      protocolName: "MQTT",
      protocolVersion: 4,
      clean: false,
      keepAlive: 0,
      clientId: "client-ä",
      will: { topic: "last/will", payload: u8a([]), qos: 1, retain: false },
      username: "üser",
    },
  },
  {
    name: "CONNACK session present, accepted",
    versions: [3, 4],
    bytes: pkt(0x20, 0x01, 0x00),
    packet: { type: 2, sessionPresent: true, reasonCode: 0 },
  },
  {
    name: "CONNACK not authorized",
    versions: [3, 4],
    bytes: pkt(0x20, 0x00, 0x05),
    packet: { type: 2, sessionPresent: false, reasonCode: 5 },
  },
  {
    name: "PUBLISH QoS 0 retain",
    versions: [3, 4],
    bytes: pkt(0x31, str("a/b"), raw("hello")),
    packet: {
      type: 3,
      topic: "a/b",
      payload: u8a("hello"),
      qos: 0,
      retain: true,
      dup: false,
    },
  },
  {
    name: "PUBLISH QoS 1 dup",
    versions: [3, 4],
    bytes: pkt(0x3a, str("t"), u16(7), raw("x")),
    packet: {
      type: 3,
      topic: "t",
      payload: u8a("x"),
      qos: 1,
      retain: false,
      dup: true,
      packetId: 7,
    },
  },
  {
    name: "PUBLISH QoS 2 empty payload, unicode topic",
    versions: [3, 4],
    bytes: pkt(0x34, str("sensor/温度/🌡"), u16(65535)),
    packet: {
      type: 3,
      topic: "sensor/温度/🌡",
      payload: u8a([]),
      qos: 2,
      retain: false,
      dup: false,
      packetId: 65535,
    },
  },
  {
    name: "PUBLISH 20000-byte payload (3-byte remaining length)",
    versions: [3, 4],
    bytes: new Uint8Array([0x30, ...vbi(2 + 3 + big.length), ...str("big"), ...big]),
    packet: { type: 3, topic: "big", payload: big, qos: 0, retain: false, dup: false },
  },
  {
    name: "PUBACK",
    versions: [3, 4],
    bytes: pkt(0x40, u16(1)),
    packet: { type: 4, packetId: 1 },
  },
  {
    name: "PUBREC",
    versions: [3, 4],
    bytes: pkt(0x50, u16(0x1234)),
    packet: { type: 5, packetId: 0x1234 },
  },
  {
    name: "PUBREL",
    versions: [3, 4],
    bytes: pkt(0x62, u16(2)),
    packet: { type: 6, packetId: 2 },
  },
  {
    name: "PUBCOMP",
    versions: [3, 4],
    bytes: pkt(0x70, u16(3)),
    packet: { type: 7, packetId: 3 },
  },
  {
    name: "SUBSCRIBE two filters",
    versions: [3, 4],
    bytes: pkt(0x82, u16(10), str("a/+"), 0x01, str("#"), 0x02),
    packet: {
      type: 8,
      packetId: 10,
      subscriptions: [
        { topicFilter: "a/+", qos: 1, ...sub3 },
        { topicFilter: "#", qos: 2, ...sub3 },
      ],
    },
  },
  {
    name: "SUBACK with failure",
    versions: [3, 4],
    bytes: pkt(0x90, u16(10), 0x00, 0x01, 0x02, 0x80),
    packet: { type: 9, packetId: 10, reasonCodes: [0, 1, 2, 0x80] },
  },
  {
    name: "UNSUBSCRIBE",
    versions: [3, 4],
    bytes: pkt(0xa2, u16(11), str("a/+"), str("b")),
    packet: { type: 10, packetId: 11, topicFilters: ["a/+", "b"] },
  },
  {
    name: "UNSUBACK",
    versions: [3, 4],
    bytes: pkt(0xb0, u16(11)),
    packet: { type: 11, packetId: 11 },
  },
  { name: "PINGREQ", versions: [3, 4, 5], bytes: pkt(0xc0), packet: { type: 12 } },
  { name: "PINGRESP", versions: [3, 4, 5], bytes: pkt(0xd0), packet: { type: 13 } },
  { name: "DISCONNECT", versions: [3, 4], bytes: pkt(0xe0), packet: { type: 14 } },
];

export const CASES: Case[] = [...CASES_V3, ...CASES_V5];
