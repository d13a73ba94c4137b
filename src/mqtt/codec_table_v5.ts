/** Test fixture: byte-annotated MQTT 5.0 packets (see codec_table.ts). */
import { bin, type Case, pkt, prop, props, raw, str, u16, u32, u8a, vbi } from "./codec_bytes.ts";

export const CASES_V5: Case[] = [
  {
    name: "CONNECT 5.0 with every CONNECT and will property",
    versions: [5],
    bytes: pkt(
      0x10, // CONNECT
      str("MQTT"), // protocol name
      5, // level
      0b11101110, // user, password, will retain, will QoS 1, will, clean start
      u16(10),
      props(
        prop(0x11, u32(3600)), // session expiry interval
        prop(0x15, str("SCRAM")), // authentication method
        prop(0x16, bin([1, 2])), // authentication data
        prop(0x17, 0), // request problem information
        prop(0x19, 1), // request response information
        prop(0x21, u16(20)), // receive maximum
        prop(0x22, u16(10)), // topic alias maximum
        prop(0x26, str("k"), str("v")), // user property
        prop(0x26, str("k"), str("v2")), // user property, same name, order kept
        prop(0x27, u32(1048576)), // maximum packet size
      ),
      str("c5"),
      props( // will properties
        prop(0x01, 1), // payload format indicator
        prop(0x02, u32(60)), // message expiry interval
        prop(0x03, str("text/plain")), // content type
        prop(0x08, str("reply/here")), // response topic
        prop(0x09, bin([9, 9])), // correlation data
        prop(0x18, u32(5)), // will delay interval
        prop(0x26, str("wk"), str("wv")), // user property
      ),
      str("will/t"),
      bin([0x62, 0x79, 0x65]),
      str("user"),
      bin([0x73]),
    ),
    packet: {
      type: 1,
      protocolName: "MQTT",
      protocolVersion: 5,
      clean: true,
      keepAlive: 10,
      clientId: "c5",
      properties: {
        sessionExpiryInterval: 3600,
        authenticationMethod: "SCRAM",
        authenticationData: u8a([1, 2]),
        requestProblemInformation: 0,
        requestResponseInformation: 1,
        receiveMaximum: 20,
        topicAliasMaximum: 10,
        userProperties: [["k", "v"], ["k", "v2"]],
        maximumPacketSize: 1048576,
      },
      will: {
        topic: "will/t",
        payload: u8a("bye"),
        qos: 1,
        retain: true,
        properties: {
          payloadFormatIndicator: 1,
          messageExpiryInterval: 60,
          contentType: "text/plain",
          responseTopic: "reply/here",
          correlationData: u8a([9, 9]),
          willDelayInterval: 5,
          userProperties: [["wk", "wv"]],
        },
      },
      username: "user",
      password: u8a("s"),
    },
  },
  {
    name: "CONNECT 5.0 password without user name, no properties",
    versions: [5],
    bytes: pkt(0x10, str("MQTT"), 5, 0b01000000, u16(0), props(), str("p"), bin([1])),
    packet: {
      type: 1,
      protocolName: "MQTT",
      protocolVersion: 5,
      clean: false,
      keepAlive: 0,
      clientId: "p",
      password: u8a([1]),
    },
  },
  {
    name: "CONNACK 5.0 with every CONNACK property",
    versions: [5],
    bytes: pkt(
      0x20, // CONNACK
      0x00, // no session present
      0x00, // success
      props(
        prop(0x11, u32(0)), // session expiry interval
        prop(0x12, str("auto-1")), // assigned client identifier
        prop(0x13, u16(30)), // server keep alive
        prop(0x15, str("m")), // authentication method
        prop(0x16, bin([7])), // authentication data
        prop(0x1a, str("resp/")), // response information
        prop(0x1c, str("other:1883")), // server reference
        prop(0x1f, str("ok")), // reason string
        prop(0x21, u16(100)), // receive maximum
        prop(0x22, u16(5)), // topic alias maximum
        prop(0x24, 1), // maximum QoS
        prop(0x25, 0), // retain available
        prop(0x26, str("a"), str("b")), // user property
        prop(0x27, u32(65536)), // maximum packet size
        prop(0x28, 0), // wildcard subscription available
        prop(0x29, 1), // subscription identifier available
        prop(0x2a, 0), // shared subscription available
      ),
    ),
    packet: {
      type: 2,
      sessionPresent: false,
      reasonCode: 0,
      properties: {
        sessionExpiryInterval: 0,
        assignedClientIdentifier: "auto-1",
        serverKeepAlive: 30,
        authenticationMethod: "m",
        authenticationData: u8a([7]),
        responseInformation: "resp/",
        serverReference: "other:1883",
        reasonString: "ok",
        receiveMaximum: 100,
        topicAliasMaximum: 5,
        maximumQoS: 1,
        retainAvailable: 0,
        userProperties: [["a", "b"]],
        maximumPacketSize: 65536,
        wildcardSubscriptionAvailable: 0,
        subscriptionIdentifierAvailable: 1,
        sharedSubscriptionAvailable: 0,
      },
    },
  },
  {
    name: "CONNACK 5.0 unsupported protocol version, no properties",
    versions: [5],
    bytes: pkt(0x20, 0x00, 0x84, props()),
    packet: { type: 2, sessionPresent: false, reasonCode: 0x84 },
  },
  {
    name: "PUBLISH 5.0 QoS 1 with every PUBLISH property",
    versions: [5],
    bytes: pkt(
      0x33, // QoS 1, retain
      str("p/q"),
      u16(5),
      props(
        prop(0x01, 0), // payload format indicator
        prop(0x02, u32(10)), // message expiry interval
        prop(0x03, str("json")), // content type
        prop(0x08, str("r/t")), // response topic
        prop(0x09, bin([0xc0, 0xff])), // correlation data
        prop(0x0b, vbi(1)), // subscription identifier
        prop(0x0b, vbi(268435455)), // subscription identifier (4-byte VBI)
        prop(0x23, u16(3)), // topic alias
        prop(0x26, str("x"), str("1")), // user property
        prop(0x26, str("y"), str("2")), // user property
      ),
      raw("{}"),
    ),
    packet: {
      type: 3,
      topic: "p/q",
      payload: u8a("{}"),
      qos: 1,
      retain: true,
      dup: false,
      packetId: 5,
      properties: {
        payloadFormatIndicator: 0,
        messageExpiryInterval: 10,
        contentType: "json",
        responseTopic: "r/t",
        correlationData: u8a([0xc0, 0xff]),
        subscriptionIdentifier: [1, 268435455],
        topicAlias: 3,
        userProperties: [["x", "1"], ["y", "2"]],
      },
    },
  },
  {
    name: "PUBLISH 5.0 empty topic with topic alias",
    versions: [5],
    bytes: pkt(0x30, str(""), props(0x23, u16(3)), raw("v")),
    packet: {
      type: 3,
      topic: "",
      payload: u8a("v"),
      qos: 0,
      retain: false,
      dup: false,
      properties: { topicAlias: 3 },
    },
  },
  {
    name: "PUBLISH 5.0 QoS 0 no properties",
    versions: [5],
    bytes: pkt(0x30, str("t"), props(), raw("p")),
    packet: { type: 3, topic: "t", payload: u8a("p"), qos: 0, retain: false, dup: false },
  },
  {
    name: "PUBACK 5.0 short form",
    versions: [5],
    bytes: pkt(0x40, u16(9)),
    packet: { type: 4, packetId: 9, reasonCode: 0 },
  },
  {
    name: "PUBACK 5.0 no matching subscribers, no properties",
    versions: [5],
    bytes: pkt(0x40, u16(9), 0x10),
    packet: { type: 4, packetId: 9, reasonCode: 0x10 },
  },
  {
    name: "PUBREC 5.0 quota exceeded with reason string and user properties",
    versions: [5],
    bytes: pkt(
      0x50,
      u16(9),
      0x97,
      props(0x1f, str("full"), 0x26, str("a"), str("1"), 0x26, str("a"), str("2")),
    ),
    packet: {
      type: 5,
      packetId: 9,
      reasonCode: 0x97,
      properties: { reasonString: "full", userProperties: [["a", "1"], ["a", "2"]] },
    },
  },
  {
    name: "PUBREL 5.0 short form",
    versions: [5],
    bytes: pkt(0x62, u16(9)),
    packet: { type: 6, packetId: 9, reasonCode: 0 },
  },
  {
    name: "PUBCOMP 5.0 packet identifier not found with reason string",
    versions: [5],
    bytes: pkt(0x70, u16(9), 0x92, props(0x1f, str("gone"))),
    packet: { type: 7, packetId: 9, reasonCode: 0x92, properties: { reasonString: "gone" } },
  },
  {
    name: "PUBACK 5.0 success with a property keeps the reason byte",
    versions: [5],
    bytes: pkt(0x40, u16(1), 0x00, props(0x26, str("k"), str("v"))),
    packet: { type: 4, packetId: 1, reasonCode: 0, properties: { userProperties: [["k", "v"]] } },
  },
  {
    name: "SUBSCRIBE 5.0 with subscription identifier and options",
    versions: [5],
    bytes: pkt(
      0x82,
      u16(4),
      props(0x0b, vbi(300), 0x26, str("s"), str("t")),
      str("a/#"),
      0b00101110, // retain handling 2, retain as published, no local, QoS 2
      str("$share/g/x"),
      0b00010000, // retain handling 1, QoS 0
    ),
    packet: {
      type: 8,
      packetId: 4,
      properties: { subscriptionIdentifier: [300], userProperties: [["s", "t"]] },
      subscriptions: [
        { topicFilter: "a/#", qos: 2, noLocal: true, retainAsPublished: true, retainHandling: 2 },
        {
          topicFilter: "$share/g/x",
          qos: 0,
          noLocal: false,
          retainAsPublished: false,
          retainHandling: 1,
        },
      ],
    },
  },
  {
    name: "SUBACK 5.0 with reason string",
    versions: [5],
    bytes: pkt(0x90, u16(4), props(0x1f, str("partly")), 0x02, 0x00, 0x87, 0xa2),
    packet: {
      type: 9,
      packetId: 4,
      properties: { reasonString: "partly" },
      reasonCodes: [2, 0, 0x87, 0xa2],
    },
  },
  {
    name: "UNSUBSCRIBE 5.0 with user property",
    versions: [5],
    bytes: pkt(0xa2, u16(6), props(0x26, str("u"), str("p")), str("a/+")),
    packet: {
      type: 10,
      packetId: 6,
      properties: { userProperties: [["u", "p"]] },
      topicFilters: ["a/+"],
    },
  },
  {
    name: "UNSUBACK 5.0",
    versions: [5],
    bytes: pkt(0xb0, u16(6), props(), 0x00, 0x11),
    packet: { type: 11, packetId: 6, reasonCodes: [0, 0x11] },
  },
  {
    name: "DISCONNECT 5.0 short form",
    versions: [5],
    bytes: pkt(0xe0),
    packet: { type: 14, reasonCode: 0 },
  },
  {
    name: "DISCONNECT 5.0 session taken over with properties",
    versions: [5],
    bytes: pkt(
      0xe0,
      0x8e,
      props(0x11, u32(0), 0x1c, str("srv2"), 0x1f, str("bye"), 0x26, str("a"), str("b")),
    ),
    packet: {
      type: 14,
      reasonCode: 0x8e,
      properties: {
        sessionExpiryInterval: 0,
        serverReference: "srv2",
        reasonString: "bye",
        userProperties: [["a", "b"]],
      },
    },
  },
  {
    name: "DISCONNECT 5.0 with will message, no properties",
    versions: [5],
    bytes: pkt(0xe0, 0x04),
    packet: { type: 14, reasonCode: 0x04 },
  },
  {
    name: "AUTH 5.0 short form",
    versions: [5],
    bytes: pkt(0xf0),
    packet: { type: 15, reasonCode: 0 },
  },
  {
    name: "AUTH 5.0 continue authentication",
    versions: [5],
    bytes: pkt(
      0xf0,
      0x18,
      props(0x15, str("SCRAM"), 0x16, bin([1, 2, 3]), 0x1f, str("more"), 0x26, str("n"), str("v")),
    ),
    packet: {
      type: 15,
      reasonCode: 0x18,
      properties: {
        authenticationMethod: "SCRAM",
        authenticationData: u8a([1, 2, 3]),
        reasonString: "more",
        userProperties: [["n", "v"]],
      },
    },
  },
];
