/**
 * Decode the variable header and payload of one complete packet whose bytes
 * the Reader holds (fixed header already parsed). Pure: no buffering here,
 * see decoder.ts for framing.
 */
import { MqttSyntaxError } from "./errors.ts";
import { RangePublish } from "./publish_range.ts";
import type {
  AckPacket,
  AuthPacket,
  ConnackPacket,
  ConnectPacket,
  DisconnectPacket,
  Packet,
  ProtocolVersion,
  PublishPacket,
  QoS,
  SubackPacket,
  SubscribePacket,
  SubscribeRequest,
  UnsubackPacket,
  UnsubscribePacket,
} from "./packet.ts";
import { decodeProperties, WILL } from "./properties.ts";
import type { Reader } from "./reader.ts";
import { decodeTopicName } from "./topic_names.ts";
import { validReasonCodes } from "./reason_codes.ts";

export const PACKET_NAMES = [
  "reserved packet type 0",
  "CONNECT",
  "CONNACK",
  "PUBLISH",
  "PUBACK",
  "PUBREC",
  "PUBREL",
  "PUBCOMP",
  "SUBSCRIBE",
  "SUBACK",
  "UNSUBSCRIBE",
  "UNSUBACK",
  "PINGREQ",
  "PINGRESP",
  "DISCONNECT",
  "AUTH",
];

const V3_SUBACK_CODES: ReadonlySet<number> = new Set([0, 1, 2, 0x80]);

/**
 * Decode one packet. `first` is the fixed header's first byte; `version` the
 * connection's protocol level (undefined before CONNECT: treated as 3.1.1).
 * (The broker's decoder calls decodePublish itself: see PacketDecoder.decode.)
 */
export function decodePacket(
  r: Reader,
  first: number,
  version: ProtocolVersion | undefined,
): Packet {
  const type = first >> 4;
  const flags = first & 0x0f;
  const v = version ?? 4;
  if (type === 3) return decodePublish(r, flags, v);
  r.name = PACKET_NAMES[type];
  // Reserved flag bits [MQTT-2.2.2-1] [MQTT-2.2.2-2].
  const expected = type === 6 || type === 8 || type === 10 ? 2 : 0;
  if (flags !== expected) r.fail(`reserved fixed header flags are ${flags}, must be ${expected}`);
  switch (type) {
    case 1:
      return decodeConnect(r);
    case 2:
      return decodeConnack(r, v);
    case 4:
    case 5:
    case 6:
    case 7:
      return decodeAck(r, type, v);
    case 8:
      return decodeSubscribe(r, v);
    case 9:
      return decodeSuback(r, v);
    case 10:
      return decodeUnsubscribe(r, v);
    case 11:
      return decodeUnsuback(r, v);
    case 12:
    case 13:
      r.done();
      return { type };
    case 14:
      return decodeDisconnect(r, v);
    case 15:
      if (v !== 5) r.fail("AUTH requires MQTT 5.0");
      return decodeAuth(r);
    default:
      return r.fail("packet type 0 is reserved");
  }
}

function reasonCode(r: Reader, type: number): number {
  const code = r.u8("reason code");
  if (!validReasonCodes[type].has(code)) {
    r.fail(`invalid reason code 0x${code.toString(16).padStart(2, "0")}`);
  }
  return code;
}

function decodeConnect(r: Reader): ConnectPacket {
  const protocolName = r.utf8("protocol name");
  const level = r.u8("protocol level");
  let supported: boolean;
  if (protocolName === "MQTT") supported = level === 4 || level === 5;
  else if (protocolName === "MQIsdp") supported = level === 3;
  else return r.fail(`unknown protocol name "${protocolName}"`);
  const p: ConnectPacket = {
    type: 1,
    protocolName,
    protocolVersion: level as ProtocolVersion,
    clean: false,
    keepAlive: 0,
    clientId: "",
  };
  if (supported) {
    readConnectBody(r, p, level as ProtocolVersion);
    return p;
  }
  // An unsupported level is returned, not thrown, so the broker can answer
  // CONNACK 0x01 / 0x84 [MQTT-3.1.2-2]. A known level under the wrong name
  // ("MQTT" 3, "MQIsdp" 4) is reported as level 0 so it can't pass for valid.
  if (level >= 3 && level <= 5) p.protocolVersion = 0 as ProtocolVersion;
  try {
    readConnectBody(r, p, 4);
  } catch (e) {
    if (!(e instanceof MqttSyntaxError)) throw e;
  }
  return p;
}

function readConnectBody(r: Reader, p: ConnectPacket, v: ProtocolVersion): void {
  const flags = r.u8("connect flags");
  if (flags & 0x01) r.fail("reserved connect flag is set"); // [MQTT-3.1.2-3]
  const willFlag = (flags & 0x04) !== 0;
  const willQos = (flags >> 3) & 3;
  const willRetain = (flags & 0x20) !== 0;
  if (!willFlag && willQos !== 0) r.fail("will QoS set without will flag"); // [MQTT-3.1.2-13]
  if (!willFlag && willRetain) r.fail("will retain set without will flag"); // [MQTT-3.1.2-15]
  if (willQos === 3) r.fail("will QoS is 3"); // [MQTT-3.1.2-14]
  const hasUsername = (flags & 0x80) !== 0;
  const hasPassword = (flags & 0x40) !== 0;
  if (hasPassword && !hasUsername && v !== 5) {
    r.fail("password flag set without user name flag"); // [MQTT-3.1.2-22]
  }
  p.clean = (flags & 0x02) !== 0;
  p.keepAlive = r.u16("keep alive");
  if (v === 5) {
    const props = decodeProperties(r, 1);
    if (props) p.properties = props;
  }
  p.clientId = r.utf8("client identifier"); // [MQTT-3.1.3-4]
  if (willFlag) {
    const props = v === 5 ? decodeProperties(r, WILL) : undefined;
    const topic = r.utf8("will topic"); // [MQTT-3.1.3-10]
    // The will topic is a topic name: non-empty, no wildcards [MQTT-4.7.3-1] [MQTT-4.7.1-1].
    // (0x90 lets a 5.0 broker answer CONNACK Topic Name invalid.)
    if (topic.length === 0) r.fail("will topic is empty", 0x90);
    if (hasWildcard(topic)) r.fail("will topic contains a wildcard", 0x90);
    const payload = r.binary("will payload");
    p.will = { topic, payload, qos: willQos as QoS, retain: willRetain };
    if (props) p.will.properties = props;
  }
  if (hasUsername) p.username = r.utf8("user name"); // [MQTT-3.1.3-11]
  if (hasPassword) p.password = r.binary("password");
  r.done();
}

function hasWildcard(topic: string): boolean {
  return topic.includes("+") || topic.includes("#");
}

function decodeConnack(r: Reader, v: ProtocolVersion): ConnackPacket {
  const ackFlags = r.u8("acknowledge flags");
  if (ackFlags & 0xfe) r.fail("reserved acknowledge flags are set"); // [MQTT-3.2.2-1]
  const code = v === 5 ? reasonCode(r, 2) : r.u8("return code");
  if (v !== 5 && code > 5) r.fail(`invalid return code ${code}`);
  const p: ConnackPacket = { type: 2, sessionPresent: ackFlags === 1, reasonCode: code };
  if (v === 5) {
    const props = decodeProperties(r, 2);
    if (props) p.properties = props;
  }
  r.done();
  return p;
}

/** A PUBLISH; `flags` are the fixed header's low four bits. */
export function decodePublish(r: Reader, flags: number, v: ProtocolVersion): PublishPacket {
  r.name = "PUBLISH";
  const level = (flags >> 1) & 3;
  if (level === 3) r.fail("QoS is 3"); // [MQTT-3.3.1-4]
  const qos = level as QoS;
  const dup = (flags & 0x08) !== 0;
  if (dup && qos === 0) r.fail("DUP flag set on a QoS 0 message"); // [MQTT-3.3.1-2]
  const retain = (flags & 0x01) !== 0;
  // The topic name [MQTT-3.3.2-1] [MQTT-3.3.2-2], read here rather than by a Reader method:
  // each function on the per-message path is one more that JavaScriptCore compiles on its own
  // and again inside its callers while a fresh broker takes its first burst.
  const b = r.buf, p = r.pos;
  if (p + 2 > r.end) r.fail("topic name is truncated");
  const topicStart = p + 2, topicEnd = topicStart + ((b[p] << 8) | b[p + 1]);
  r.pos = topicStart;
  if (topicEnd > r.end) r.fail("topic name is truncated");
  const topic = decodeTopicName(b, topicStart, topicEnd);
  if (topic === undefined) r.fail("topic name is not valid UTF-8");
  if (topic === null) r.fail("topic name contains a wildcard", 0x90); // [MQTT-3.3.2-2]
  r.pos = topicEnd;
  const packetId = qos > 0 ? r.packetId() : 0;
  const properties = v === 5 ? decodeProperties(r, 3) : undefined;
  if (topic.length === 0) {
    // 3.x needs a topic [MQTT-4.7.3-1]; 5.0 allows an empty one only with a Topic Alias (3.3.2.1).
    if (v !== 5) r.fail("topic name is empty");
    if (properties?.topicAlias === undefined) {
      r.fail("topic name is empty and there is no topic alias", 0x82);
    }
  }
  if (r.ranges) {
    const source = r.buf, start = r.pos;
    r.pos = r.end;
    return new RangePublish(
      topic,
      qos,
      retain,
      dup,
      qos > 0 ? packetId : undefined,
      properties,
      source,
      start,
      r.end - start,
    );
  }
  const payload = r.buf.subarray(r.pos, r.end);
  r.pos = r.end;
  // Built whole, with only the fields it has: the most frequent packet gets
  // no property added after creation (no hidden-class change, no extra store).
  if (qos === 0) {
    return properties
      ? { type: 3, topic, payload, qos, retain, dup, properties }
      : { type: 3, topic, payload, qos, retain, dup };
  }
  return properties
    ? { type: 3, topic, payload, qos, retain, dup, packetId, properties }
    : { type: 3, topic, payload, qos, retain, dup, packetId };
}

function decodeAck<T extends 4 | 5 | 6 | 7>(r: Reader, type: T, v: ProtocolVersion): AckPacket<T> {
  const p: AckPacket<T> = { type, packetId: r.packetId() };
  if (v === 5) {
    // Remaining length 2 means reason 0 and no properties (3.4.2.1).
    p.reasonCode = r.pos < r.end ? reasonCode(r, type) : 0;
    if (r.pos < r.end) {
      const props = decodeProperties(r, type);
      if (props) p.properties = props;
    }
  }
  r.done();
  return p;
}

function decodeSubscribe(r: Reader, v: ProtocolVersion): SubscribePacket {
  const p: SubscribePacket = { type: 8, packetId: r.packetId(), subscriptions: [] };
  if (v === 5) {
    const props = decodeProperties(r, 8);
    if (props) p.properties = props;
  }
  while (r.pos < r.end) {
    const topicFilter = r.utf8("topic filter"); // [MQTT-3.8.3-1]
    if (topicFilter.length === 0) r.fail("topic filter is empty"); // [MQTT-4.7.3-1]
    const opts = r.u8("subscription options");
    const qos = opts & 3;
    if (qos === 3) r.fail("requested QoS is 3"); // [MQTT-3.8.3-4]
    const sub: SubscribeRequest = {
      topicFilter,
      qos: qos as QoS,
      noLocal: false,
      retainAsPublished: false,
      retainHandling: 0,
    };
    if (v === 5) {
      if (opts & 0xc0) r.fail("reserved subscription option bits are set"); // [MQTT-3.8.3-5]
      const rh = (opts >> 4) & 3;
      if (rh === 3) r.fail("retain handling is 3", 0x82); // a Protocol Error (5.0, 3.8.3.1)
      sub.noLocal = (opts & 0x04) !== 0;
      sub.retainAsPublished = (opts & 0x08) !== 0;
      sub.retainHandling = rh as 0 | 1 | 2;
    } else if (opts & 0xfc) {
      r.fail("reserved subscription option bits are set"); // [MQTT-3.8.3-4]
    }
    p.subscriptions.push(sub);
  }
  if (p.subscriptions.length === 0) r.fail("no topic filter"); // [MQTT-3.8.3-3]
  return p;
}

function decodeSuback(r: Reader, v: ProtocolVersion): SubackPacket {
  const p: SubackPacket = { type: 9, packetId: r.packetId(), reasonCodes: [] };
  if (v === 5) {
    const props = decodeProperties(r, 9);
    if (props) p.properties = props;
  }
  const valid = v === 5 ? validReasonCodes[9] : V3_SUBACK_CODES;
  while (r.pos < r.end) {
    const code = r.u8("return code");
    if (!valid.has(code)) r.fail(`invalid return code 0x${code.toString(16).padStart(2, "0")}`);
    p.reasonCodes.push(code);
  }
  if (p.reasonCodes.length === 0) r.fail("no return code");
  return p;
}

function decodeUnsubscribe(r: Reader, v: ProtocolVersion): UnsubscribePacket {
  const p: UnsubscribePacket = { type: 10, packetId: r.packetId(), topicFilters: [] };
  if (v === 5) {
    const props = decodeProperties(r, 10);
    if (props) p.properties = props;
  }
  while (r.pos < r.end) {
    const filter = r.utf8("topic filter"); // [MQTT-3.10.3-1]
    if (filter.length === 0) r.fail("topic filter is empty"); // [MQTT-4.7.3-1]
    p.topicFilters.push(filter);
  }
  if (p.topicFilters.length === 0) r.fail("no topic filter"); // [MQTT-3.10.3-2]
  return p;
}

function decodeUnsuback(r: Reader, v: ProtocolVersion): UnsubackPacket {
  const p: UnsubackPacket = { type: 11, packetId: r.packetId() };
  if (v === 5) {
    const props = decodeProperties(r, 11);
    if (props) p.properties = props;
    const codes: number[] = [];
    while (r.pos < r.end) codes.push(reasonCode(r, 11));
    if (codes.length === 0) r.fail("no reason code");
    p.reasonCodes = codes;
  }
  r.done();
  return p;
}

function decodeDisconnect(r: Reader, v: ProtocolVersion): DisconnectPacket {
  const p: DisconnectPacket = { type: 14 };
  if (v === 5) {
    // Remaining length 0 means Normal disconnection (3.14.2.1).
    p.reasonCode = r.pos < r.end ? reasonCode(r, 14) : 0;
    if (r.pos < r.end) {
      const props = decodeProperties(r, 14);
      if (props) p.properties = props;
    }
  }
  r.done();
  return p;
}

function decodeAuth(r: Reader): AuthPacket {
  // Remaining length 0 means Success (3.15.2.1).
  const p: AuthPacket = { type: 15, reasonCode: r.pos < r.end ? reasonCode(r, 15) : 0 };
  if (r.pos < r.end) {
    const props = decodeProperties(r, 15);
    if (props) p.properties = props;
  }
  r.done();
  return p;
}
