import type { ConnectPacket, ProtocolVersion, QoS } from "../mqtt/packet.ts";
import type { Message } from "./message.ts";

/** Who is on the other end of a connection, as hooks see it. */
export interface ClientInfo {
  readonly clientId: string;
  readonly username?: string;
  readonly remoteAddr: string;
  readonly protocolVersion: ProtocolVersion;
  /** TLS client certificate, when the transport verified one. */
  readonly certificate?: PeerCertificate;
  /** Per-client topic rights from authentication (original mqttx authorizedSub/authorizedPub). */
  authorizedSub?: string[];
  authorizedPub?: string[];
}

export interface PeerCertificate {
  readonly subject: string;
  readonly commonName?: string;
  readonly fingerprint256?: string;
}

/**
 * The answer of an authentication hook: accept (optionally with topic
 * rights), refuse with a 5.0 reason code (mapped to a 3.1.1 return code), or
 * undefined to let the next hook decide.
 */
export type AuthDecision =
  | {
    ok: true;
    username?: string;
    /** Accepted as anonymous: the user name the client claimed was not verified and is dropped. */
    anonymous?: boolean;
    authorizedSub?: string[];
    authorizedPub?: string[];
  }
  | { ok: false; reasonCode: number; reasonString?: string };

/**
 * One step of MQTT 5.0 enhanced authentication (AUTH packet exchange, 4.12):
 * send more challenge data, succeed (with the same kind of decision as
 * `authenticate`), or fail with a reason code.
 */
export type AuthStep =
  | { kind: "continue"; data?: Uint8Array }
  | { kind: "success"; data?: Uint8Array; decision?: AuthDecision & { ok: true } }
  | { kind: "fail"; reasonCode: number; reasonString?: string };

/** A server side of one authentication method, e.g. SCRAM-SHA-256. */
export interface EnhancedAuthenticator {
  /** The Authentication Method name, compared exactly. */
  readonly method: string;
  /**
   * Begin an exchange for this connection (at CONNECT, or a 5.0
   * re-authentication). The returned session object sees every later AUTH.
   */
  start(client: ClientInfo): EnhancedAuthSession;
}

export interface EnhancedAuthSession {
  /** Client data from CONNECT or AUTH (may be absent); answer with the next step. */
  step(data: Uint8Array | undefined): AuthStep | Promise<AuthStep>;
}

/**
 * Extension points, each optional, run as a chain in order: the first
 * refusal wins. Anything embedding the broker (auth, ACL, $SYS, bridges)
 * plugs in here rather than editing the handlers.
 */
export interface BrokerHooks {
  /** Decide on a CONNECT. Undefined from every hook means accepted. */
  authenticate?(
    client: ClientInfo,
    connect: ConnectPacket,
  ): AuthDecision | undefined | Promise<AuthDecision | undefined>;
  /** Enhanced authentication methods this hook provides (5.0 AUTH). */
  authenticators?: EnhancedAuthenticator[];
  /** May this client publish to `topic`? Also asked for the will at CONNECT. */
  authorizePublish?(client: ClientInfo, topic: string, qos: QoS, retain: boolean): boolean;
  /**
   * May this client subscribe to `filter` (as sent, incl. `$share/group/`)? Also asked as
   * messages go out, with the topic name as the filter (`$share/{group}/{topic}` through a
   * shared subscription): may this client read it? Answers are cached per connection.
   */
  authorizeSubscribe?(client: ClientInfo, filter: string, qos: QoS): boolean;
  /** After CONNACK success. */
  onConnected?(client: ClientInfo): void;
  /** After a connected client's connection ended. */
  onDisconnected?(client: ClientInfo): void;
  /** After SUBACK, for each granted filter (e.g. $SYS answers right after a subscribe). */
  onSubscribed?(client: ClientInfo, filter: string, qos: QoS): void;
  /** Once per message accepted for routing (counters, bridges). */
  onPublished?(topic: string, payload: Uint8Array, qos: QoS, retain: boolean, from?: string): void;
  /**
   * Once per message accepted for routing, with the whole message (5.0 properties too), for a
   * hook that keeps or forwards it (a bridge, a durable store). Routing is never delayed. A
   * returned promise holds the publisher's PUBACK/PUBREC until it settles ("acknowledged means
   * kept"): resolved, acknowledged as usual; rejected, refused (5.0: reason 0x80; 3.1.1, which has
   * no refusal: the connection is closed, so the client sends it again). Acknowledgements to one
   * connection stay in order. Return nothing when there is nothing to wait for: no promise per
   * message then. Must not keep `message.payload` past the call without copying it.
   */
  persistPublish?(message: Message): void | Promise<void>;
}

/** 3.1.1 CONNACK return code for a 5.0 refusal reason. */
export function connackV3Code(reasonCode: number): number {
  switch (reasonCode) {
    case 0x84:
      return 0x01; // unacceptable protocol version
    case 0x85:
      return 0x02; // identifier rejected
    case 0x86:
      return 0x04; // bad user name or password
    case 0x80: // the server failed (a hook threw): "server unavailable", the client retries
    case 0x88:
    case 0x89:
    case 0x97:
    case 0x9f:
      return 0x03; // server unavailable / busy / quota / rate
    default:
      return 0x05; // not authorized
  }
}
