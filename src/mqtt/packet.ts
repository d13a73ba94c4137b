/**
 * MQTT control packets as a discriminated union on `type`.
 * One shape serves MQTT 3.1 (level 3), 3.1.1 (level 4) and 5.0 (level 5):
 * fields that exist only in 5.0 (reason codes, properties) are optional and are
 * neither decoded nor encoded for older levels.
 */

/** Protocol level byte of CONNECT: 3 = MQTT 3.1 ("MQIsdp"), 4 = 3.1.1, 5 = 5.0. */
export type ProtocolVersion = 3 | 4 | 5;
export type QoS = 0 | 1 | 2;

export const PacketType = {
  CONNECT: 1,
  CONNACK: 2,
  PUBLISH: 3,
  PUBACK: 4,
  PUBREC: 5,
  PUBREL: 6,
  PUBCOMP: 7,
  SUBSCRIBE: 8,
  SUBACK: 9,
  UNSUBSCRIBE: 10,
  UNSUBACK: 11,
  PINGREQ: 12,
  PINGRESP: 13,
  DISCONNECT: 14,
  AUTH: 15,
} as const;

export type UserProperty = [name: string, value: string];

/** MQTT 5.0 properties (section 2.2.2.2). Each packet uses the subset the spec allows. */
export interface Properties {
  payloadFormatIndicator?: number; // 0x01
  messageExpiryInterval?: number; // 0x02
  contentType?: string; // 0x03
  responseTopic?: string; // 0x08
  correlationData?: Uint8Array; // 0x09
  /** 0x0B; may appear several times in a server->client PUBLISH. */
  subscriptionIdentifier?: number[]; // 0x0B
  sessionExpiryInterval?: number; // 0x11
  assignedClientIdentifier?: string; // 0x12
  serverKeepAlive?: number; // 0x13
  authenticationMethod?: string; // 0x15
  authenticationData?: Uint8Array; // 0x16
  requestProblemInformation?: number; // 0x17
  willDelayInterval?: number; // 0x18
  requestResponseInformation?: number; // 0x19
  responseInformation?: string; // 0x1A
  serverReference?: string; // 0x1C
  reasonString?: string; // 0x1F
  receiveMaximum?: number; // 0x21
  topicAliasMaximum?: number; // 0x22
  topicAlias?: number; // 0x23
  maximumQoS?: number; // 0x24
  retainAvailable?: number; // 0x25
  userProperties?: UserProperty[]; // 0x26, order kept
  maximumPacketSize?: number; // 0x27
  wildcardSubscriptionAvailable?: number; // 0x28
  subscriptionIdentifierAvailable?: number; // 0x29
  sharedSubscriptionAvailable?: number; // 0x2A
}

export interface Will {
  topic: string;
  payload: Uint8Array;
  qos: QoS;
  retain: boolean;
  /** 5.0 will properties (will delay, expiry, content type, ...). */
  properties?: Properties;
}

export interface ConnectPacket {
  type: 1;
  /** "MQIsdp" for level 3, "MQTT" otherwise. */
  protocolName: string;
  protocolVersion: ProtocolVersion;
  /** 3.1.1 Clean Session / 5.0 Clean Start. */
  clean: boolean;
  keepAlive: number;
  clientId: string;
  will?: Will;
  username?: string;
  password?: Uint8Array;
  properties?: Properties;
}

export interface ConnackPacket {
  type: 2;
  sessionPresent: boolean;
  /** 3.x return code (0-5) or 5.0 reason code. */
  reasonCode: number;
  properties?: Properties;
}

export interface PublishPacket {
  type: 3;
  topic: string;
  payload: Uint8Array;
  qos: QoS;
  retain: boolean;
  dup: boolean;
  /** Present (1..65535) iff qos > 0. */
  packetId?: number;
  properties?: Properties;
}

/** PUBACK, PUBREC, PUBREL, PUBCOMP share one layout. */
export interface AckPacket<T extends 4 | 5 | 6 | 7> {
  type: T;
  packetId: number;
  /** 5.0 only; 0 when absent on the wire. */
  reasonCode?: number;
  properties?: Properties;
}
export type PubackPacket = AckPacket<4>;
export type PubrecPacket = AckPacket<5>;
export type PubrelPacket = AckPacket<6>;
export type PubcompPacket = AckPacket<7>;

export interface SubscriptionOptions {
  qos: QoS;
  /** 5.0 options; default false/false/0 for older levels. */
  noLocal?: boolean;
  retainAsPublished?: boolean;
  retainHandling?: 0 | 1 | 2;
}

export interface SubscribeRequest extends SubscriptionOptions {
  topicFilter: string;
}

export interface SubscribePacket {
  type: 8;
  packetId: number;
  subscriptions: SubscribeRequest[];
  properties?: Properties;
}

export interface SubackPacket {
  type: 9;
  packetId: number;
  /** 3.x return codes (0,1,2,0x80) or 5.0 reason codes, one per filter. */
  reasonCodes: number[];
  properties?: Properties;
}

export interface UnsubscribePacket {
  type: 10;
  packetId: number;
  topicFilters: string[];
  properties?: Properties;
}

export interface UnsubackPacket {
  type: 11;
  packetId: number;
  /** 5.0 only. */
  reasonCodes?: number[];
  properties?: Properties;
}

export interface PingreqPacket {
  type: 12;
}
export interface PingrespPacket {
  type: 13;
}

export interface DisconnectPacket {
  type: 14;
  /** 5.0 only; 0 when absent. */
  reasonCode?: number;
  properties?: Properties;
}

export interface AuthPacket {
  type: 15;
  reasonCode: number;
  properties?: Properties;
}

export type Packet =
  | ConnectPacket
  | ConnackPacket
  | PublishPacket
  | PubackPacket
  | PubrecPacket
  | PubrelPacket
  | PubcompPacket
  | SubscribePacket
  | SubackPacket
  | UnsubscribePacket
  | UnsubackPacket
  | PingreqPacket
  | PingrespPacket
  | DisconnectPacket
  | AuthPacket;
