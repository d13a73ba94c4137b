/**
 * MQTT 5.0 reason codes (section 2.4) and MQTT 3.x CONNACK return codes,
 * plus the sets of codes each 5.0 packet type may carry (used by the decoder).
 */

export const ReasonCode = {
  Success: 0x00,
  NormalDisconnection: 0x00,
  GrantedQoS0: 0x00,
  GrantedQoS1: 0x01,
  GrantedQoS2: 0x02,
  DisconnectWithWillMessage: 0x04,
  NoMatchingSubscribers: 0x10,
  NoSubscriptionExisted: 0x11,
  ContinueAuthentication: 0x18,
  ReAuthenticate: 0x19,
  UnspecifiedError: 0x80,
  MalformedPacket: 0x81,
  ProtocolError: 0x82,
  ImplementationSpecificError: 0x83,
  UnsupportedProtocolVersion: 0x84,
  ClientIdentifierNotValid: 0x85,
  BadUsernameOrPassword: 0x86,
  NotAuthorized: 0x87,
  ServerUnavailable: 0x88,
  ServerBusy: 0x89,
  Banned: 0x8a,
  ServerShuttingDown: 0x8b,
  BadAuthenticationMethod: 0x8c,
  KeepAliveTimeout: 0x8d,
  SessionTakenOver: 0x8e,
  TopicFilterInvalid: 0x8f,
  TopicNameInvalid: 0x90,
  PacketIdentifierInUse: 0x91,
  PacketIdentifierNotFound: 0x92,
  ReceiveMaximumExceeded: 0x93,
  TopicAliasInvalid: 0x94,
  PacketTooLarge: 0x95,
  MessageRateTooHigh: 0x96,
  QuotaExceeded: 0x97,
  AdministrativeAction: 0x98,
  PayloadFormatInvalid: 0x99,
  RetainNotSupported: 0x9a,
  QoSNotSupported: 0x9b,
  UseAnotherServer: 0x9c,
  ServerMoved: 0x9d,
  SharedSubscriptionsNotSupported: 0x9e,
  ConnectionRateExceeded: 0x9f,
  MaximumConnectTime: 0xa0,
  SubscriptionIdentifiersNotSupported: 0xa1,
  WildcardSubscriptionsNotSupported: 0xa2,
} as const;

/** MQTT 3.1 / 3.1.1 CONNACK return codes (3.1.1 section 3.2.2.3). */
export const ConnackV3 = {
  Accepted: 0,
  UnacceptableProtocolVersion: 1,
  IdentifierRejected: 2,
  ServerUnavailable: 3,
  BadUsernameOrPassword: 4,
  NotAuthorized: 5,
} as const;

/** MQTT 3.x SUBACK return code for a refused subscription. */
export const SubackV3Failure = 0x80;

function set(...codes: number[]): ReadonlySet<number> {
  return new Set(codes);
}

/** Reason codes each 5.0 packet type may carry, keyed by packet type. */
export const validReasonCodes: Readonly<Record<number, ReadonlySet<number>>> = {
  // CONNACK (3.2.2.2)
  2: set(
    0x00,
    0x80,
    0x81,
    0x82,
    0x83,
    0x84,
    0x85,
    0x86,
    0x87,
    0x88,
    0x89,
    0x8a,
    0x8c,
    0x90,
    0x95,
    0x97,
    0x99,
    0x9a,
    0x9b,
    0x9c,
    0x9d,
    0x9f,
  ),
  // PUBACK, PUBREC (3.4.2.1, 3.5.2.1)
  4: set(0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99),
  5: set(0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99),
  // PUBREL, PUBCOMP (3.6.2.1, 3.7.2.1)
  6: set(0x00, 0x92),
  7: set(0x00, 0x92),
  // SUBACK (3.9.3)
  9: set(0x00, 0x01, 0x02, 0x80, 0x83, 0x87, 0x8f, 0x91, 0x97, 0x9e, 0xa1, 0xa2),
  // UNSUBACK (3.11.3)
  11: set(0x00, 0x11, 0x80, 0x83, 0x87, 0x8f, 0x91),
  // DISCONNECT (3.14.2.1)
  14: set(
    0x00,
    0x04,
    0x80,
    0x81,
    0x82,
    0x83,
    0x87,
    0x89,
    0x8b,
    0x8d,
    0x8e,
    0x8f,
    0x90,
    0x93,
    0x94,
    0x95,
    0x96,
    0x97,
    0x98,
    0x99,
    0x9a,
    0x9b,
    0x9c,
    0x9d,
    0x9e,
    0x9f,
    0xa0,
    0xa1,
    0xa2,
  ),
  // AUTH (3.15.2.1)
  15: set(0x00, 0x18, 0x19),
};

const NAMES = new Map<number, string>();
for (const [name, code] of Object.entries(ReasonCode)) if (code >= 0x80) NAMES.set(code, name);

/** "0x93 ReceiveMaximumExceeded": a 5.0 error reason code for log lines. */
export function reasonName(code: number): string {
  const hex = `0x${code.toString(16).padStart(2, "0").toUpperCase()}`;
  const name = NAMES.get(code);
  return name ? `${hex} ${name}` : hex;
}
