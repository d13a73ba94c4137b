/**
 * MQTT 5.0 properties (section 2.2.2): one table says, for each identifier,
 * its key in `Properties`, its data type and the packets it may appear in.
 * The decoder and the encoder both run off that table.
 */
import type { Properties, UserProperty } from "./packet.ts";
import type { Reader } from "./reader.ts";
import { utf8Length } from "./utf8.ts";
import { vbiLength, type Writer } from "./writer.ts";

/** Pseudo packet type for will properties (type 0 is otherwise unused). */
export const WILL = 0;

const BYTE = 0, U16 = 1, U32 = 2, VBI = 3, STR = 4, BIN = 5, PAIR = 6;

// Bit masks of the packet types a property is allowed in (bit 0 = will).
const CONNECT = 1 << 1, CONNACK = 1 << 2, PUBLISH = 1 << 3, PUBACK = 1 << 4, PUBREC = 1 << 5;
const PUBREL = 1 << 6, PUBCOMP = 1 << 7, SUBSCRIBE = 1 << 8, SUBACK = 1 << 9;
const UNSUBSCRIBE = 1 << 10, UNSUBACK = 1 << 11, DISCONNECT = 1 << 14, AUTH = 1 << 15;
const W = 1 << WILL;
const ACKS = PUBACK | PUBREC | PUBREL | PUBCOMP;
const ALL = W | CONNECT | CONNACK | PUBLISH | ACKS | SUBSCRIBE | SUBACK | UNSUBSCRIBE | UNSUBACK |
  DISCONNECT | AUTH;

interface Def {
  id: number;
  key: keyof Properties;
  kind: number;
  allowed: number;
  /** Value must be 0 or 1 (a protocol error otherwise). */
  bool?: boolean;
  /** Reason code when the value is 0 and 0 is not allowed. */
  zero?: number;
}

const DEFS: Def[] = [
  { id: 0x01, key: "payloadFormatIndicator", kind: BYTE, allowed: PUBLISH | W, bool: true },
  { id: 0x02, key: "messageExpiryInterval", kind: U32, allowed: PUBLISH | W },
  { id: 0x03, key: "contentType", kind: STR, allowed: PUBLISH | W },
  { id: 0x08, key: "responseTopic", kind: STR, allowed: PUBLISH | W },
  { id: 0x09, key: "correlationData", kind: BIN, allowed: PUBLISH | W },
  // 0 is a protocol error (3.8.2.1.2); may repeat in PUBLISH only.
  { id: 0x0b, key: "subscriptionIdentifier", kind: VBI, allowed: PUBLISH | SUBSCRIBE, zero: 0x82 },
  { id: 0x11, key: "sessionExpiryInterval", kind: U32, allowed: CONNECT | CONNACK | DISCONNECT },
  { id: 0x12, key: "assignedClientIdentifier", kind: STR, allowed: CONNACK },
  { id: 0x13, key: "serverKeepAlive", kind: U16, allowed: CONNACK },
  { id: 0x15, key: "authenticationMethod", kind: STR, allowed: CONNECT | CONNACK | AUTH },
  { id: 0x16, key: "authenticationData", kind: BIN, allowed: CONNECT | CONNACK | AUTH },
  { id: 0x17, key: "requestProblemInformation", kind: BYTE, allowed: CONNECT, bool: true },
  { id: 0x18, key: "willDelayInterval", kind: U32, allowed: W },
  { id: 0x19, key: "requestResponseInformation", kind: BYTE, allowed: CONNECT, bool: true },
  { id: 0x1a, key: "responseInformation", kind: STR, allowed: CONNACK },
  { id: 0x1c, key: "serverReference", kind: STR, allowed: CONNACK | DISCONNECT },
  {
    id: 0x1f,
    key: "reasonString",
    kind: STR,
    allowed: CONNACK | ACKS | SUBACK | UNSUBACK | DISCONNECT | AUTH,
  },
  { id: 0x21, key: "receiveMaximum", kind: U16, allowed: CONNECT | CONNACK, zero: 0x82 },
  { id: 0x22, key: "topicAliasMaximum", kind: U16, allowed: CONNECT | CONNACK },
  // A Topic Alias of 0 is not permitted [MQTT-3.3.2-8].
  { id: 0x23, key: "topicAlias", kind: U16, allowed: PUBLISH, zero: 0x94 },
  { id: 0x24, key: "maximumQoS", kind: BYTE, allowed: CONNACK, bool: true },
  { id: 0x25, key: "retainAvailable", kind: BYTE, allowed: CONNACK, bool: true },
  { id: 0x26, key: "userProperties", kind: PAIR, allowed: ALL },
  { id: 0x27, key: "maximumPacketSize", kind: U32, allowed: CONNECT | CONNACK, zero: 0x82 },
  { id: 0x28, key: "wildcardSubscriptionAvailable", kind: BYTE, allowed: CONNACK, bool: true },
  { id: 0x29, key: "subscriptionIdentifierAvailable", kind: BYTE, allowed: CONNACK, bool: true },
  { id: 0x2a, key: "sharedSubscriptionAvailable", kind: BYTE, allowed: CONNACK, bool: true },
];

const BY_ID: (Def | undefined)[] = [];
const WHAT: string[] = []; // error-message names, built once
for (const d of DEFS) {
  BY_ID[d.id] = d;
  WHAT[d.id] = `property ${d.key}`;
}

function hex(n: number): string {
  return "0x" + n.toString(16).padStart(2, "0");
}

/**
 * Read a property length and the properties after it, for packet `type`
 * (or WILL). Returns undefined when there are none.
 */
export function decodeProperties(r: Reader, type: number): Properties | undefined {
  const len = r.vbi("property length");
  if (len === 0) return undefined;
  if (r.pos + len > r.end) r.fail("property length exceeds the packet");
  const outerEnd = r.end;
  r.end = r.pos + len; // no property may run past the property length
  const props: Record<string, unknown> = {};
  while (r.pos < r.end) {
    const id = r.vbi("property identifier");
    const def = BY_ID[id];
    // An identifier not valid for the packet type is malformed (2.2.2.2).
    if (def === undefined) r.fail(`unknown property ${hex(id)}`);
    if ((def.allowed & (1 << type)) === 0) r.fail(`property ${def.key} is not allowed here`);
    const value = readValue(r, def);
    if (def.kind === PAIR) {
      ((props.userProperties ??= []) as UserProperty[]).push(value as UserProperty);
      continue;
    }
    if (def.bool && value !== 0 && value !== 1) {
      r.fail(`property ${def.key} must be 0 or 1`, 0x82);
    }
    if (def.zero !== undefined && value === 0) r.fail(`property ${def.key} is 0`, def.zero);
    if (def.id === 0x0b) {
      const ids = props.subscriptionIdentifier as number[] | undefined;
      if (ids === undefined) props.subscriptionIdentifier = [value];
      else if (type === 3) ids.push(value as number);
      else r.fail("property subscriptionIdentifier appears twice", 0x82);
      continue;
    }
    if (props[def.key] !== undefined) r.fail(`property ${def.key} appears twice`, 0x82);
    if (def.id === 0x08 && /[+#]/.test(value as string)) {
      // The Response Topic is a topic name, wildcards are not allowed [MQTT-3.3.2-14].
      r.fail("response topic contains a wildcard", 0x82);
    }
    props[def.key] = value;
  }
  r.end = outerEnd;
  return props as Properties;
}

function readValue(r: Reader, def: Def): unknown {
  const what = WHAT[def.id];
  switch (def.kind) {
    case BYTE:
      return r.u8(what);
    case U16:
      return r.u16(what);
    case U32:
      return r.u32(what);
    case VBI:
      return r.vbi(what);
    case STR:
      return r.utf8(what);
    case BIN:
      return r.binary(what);
    default:
      return [r.utf8(what), r.utf8(what)];
  }
}

/** True when `p` holds at least one property. */
export function hasProperties(p: Properties | undefined): p is Properties {
  if (p === undefined) return false;
  for (const k in p) if ((p as Record<string, unknown>)[k] !== undefined) return true;
  return false;
}

/** Bytes the properties take, without the property length prefix. */
export function propertiesLength(p: Properties | undefined): number {
  if (p === undefined) return 0;
  let n = 0;
  for (const def of DEFS) {
    const v = p[def.key];
    if (v === undefined) continue;
    switch (def.kind) {
      case BYTE:
        n += 2;
        break;
      case U16:
        n += 3;
        break;
      case U32:
        n += 5;
        break;
      case VBI:
        for (const id of v as number[]) n += 1 + vbiLength(id);
        break;
      case STR:
        n += 3 + utf8Length(v as string);
        break;
      case BIN:
        n += 3 + (v as Uint8Array).length;
        break;
      default:
        for (const [k, val] of v as UserProperty[]) n += 5 + utf8Length(k) + utf8Length(val);
    }
  }
  return n;
}

/** Write the properties (without length prefix), in identifier order. */
export function writeProperties(w: Writer, p: Properties | undefined): void {
  if (p === undefined) return;
  for (const def of DEFS) {
    const v = p[def.key];
    if (v === undefined) continue;
    switch (def.kind) {
      case BYTE:
        w.u8(def.id);
        w.u8(v as number);
        break;
      case U16:
        w.u8(def.id);
        w.u16(v as number);
        break;
      case U32:
        w.u8(def.id);
        w.u32(v as number);
        break;
      case VBI:
        for (const id of v as number[]) {
          w.u8(def.id);
          w.vbi(id);
        }
        break;
      case STR:
        w.u8(def.id);
        w.str(v as string);
        break;
      case BIN:
        w.u8(def.id);
        w.bin(v as Uint8Array);
        break;
      default:
        for (const [k, val] of v as UserProperty[]) {
          w.u8(def.id);
          w.str(k);
          w.str(val);
        }
    }
  }
}
