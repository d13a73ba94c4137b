import type { ConnectPacket, Properties, ProtocolVersion } from "../../mqtt/packet.ts";
import type { Conn } from "../conn.ts";
import { topicNameError } from "../../mqtt/topic.ts";
import type { Broker } from "../broker.ts";
import type { Connection } from "../connection.ts";
import { drainQueue, resendInflight } from "../delivery.ts";
import {
  type AuthDecision,
  type ClientInfo,
  connackV3Code,
  type PeerCertificate,
} from "../hooks.ts";
import { NEVER_EXPIRES, Session } from "../session.ts";
import { startEnhancedAuth } from "./auth.ts";
import { isUtf8 } from "./publish.ts";
import { reasonName } from "../../mqtt/reason_codes.ts";
import { escapeForLog } from "../../log/escape.ts";

/** Refusals counted as authentication failures: bad credentials, not authorized, bad method. */
const AUTH_FAILURES = new Set([0x86, 0x87, 0x8c]);

/** Topic aliases a 5.0 client may use towards us, unless configured. */
export const TOPIC_ALIAS_MAXIMUM = 100;

/**
 * CONNECT: protocol level, client id, authentication, session takeover or
 * resume, CONNACK, then resend what the session still owes the client.
 */
export function handleConnect(
  broker: Broker,
  conn: Connection,
  p: ConnectPacket,
): void | Promise<void> {
  if (conn.connected || conn.session || conn.client) {
    conn.close(0x82); // A second CONNECT is a protocol violation [MQTT-3.1.0-2]
    return;
  }
  const version = p.protocolVersion as number;
  if (version !== 3 && version !== 4 && version !== 5) {
    // Unacceptable protocol level: CONNACK 0x01, then close [MQTT-3.1.2-2].
    conn.version = 4;
    conn.send({ type: 2, sessionPresent: false, reasonCode: 0x01 });
    conn.drop(`CONNECT refused: unsupported protocol level ${version}`);
    return;
  }
  conn.version = p.protocolVersion;

  let clientId = p.clientId;
  let assigned = false;
  if (clientId === "") {
    // Only 3.1.1 with clean session, and 5.0, may leave the id to us [MQTT-3.1.3-6/7/8].
    if (version === 3 || (version === 4 && !p.clean)) return refuse(conn, 0x85);
    clientId = `mqttx-${broker.options.brokerId}-${crypto.randomUUID()}`;
    assigned = true;
  }
  if (p.will && topicNameError(p.will.topic)) return refuse(conn, 0x90);
  if (p.will?.properties?.payloadFormatIndicator === 1 && !isUtf8(p.will.payload)) {
    return refuse(conn, 0x99); // Payload format invalid [MQTT-3.1.3-..]
  }

  const client: ClientInfo = new ConnectedClient(
    clientId,
    p.username,
    p.protocolVersion,
    conn.conn,
  );
  conn.client = client;
  const method = p.properties?.authenticationMethod;
  if (method !== undefined) return startEnhancedAuth(broker, conn, p, client, method, assigned);
  const decision = broker.authenticate(client, p);
  if (decision instanceof Promise) {
    return decision.then(
      (d) => accept(broker, conn, p, client, d, assigned),
      (e) => {
        broker.log(`authentication of ${escapeForLog(clientId)} failed: ${e}`);
        refuse(conn, 0x80);
      },
    );
  }
  accept(broker, conn, p, client, decision, assigned);
}

/** CONNACK with an error, then close; the log says `why` (else the reason code and string). */
export function refuse(
  conn: Connection,
  reasonCode: number,
  reasonString?: string,
  why?: string,
): void {
  if (AUTH_FAILURES.has(reasonCode)) conn.stats.authFailures++;
  const v5 = conn.version === 5;
  conn.send({
    type: 2,
    sessionPresent: false,
    reasonCode: v5 ? reasonCode : connackV3Code(reasonCode),
    properties: v5 && reasonString ? { reasonString } : undefined,
  });
  const code = reasonName(reasonCode) + (reasonString ? `: ${reasonString}` : "");
  conn.drop(`CONNECT refused (${code})${why ? `: ${why}` : ""}`);
}

export function accept(
  broker: Broker,
  conn: Connection,
  p: ConnectPacket,
  client: ClientInfo,
  decision: AuthDecision | undefined,
  assigned: boolean,
  authProps?: Properties,
): void {
  if (conn.closing) return; // the socket went away while authentication ran
  if (decision && !decision.ok) return refuse(conn, decision.reasonCode, decision.reasonString);
  if (decision?.ok) {
    if (decision.anonymous) Object.assign(client, { username: undefined });
    else if (decision.username !== undefined) {
      Object.assign(client, { username: decision.username });
    }
    // Only when given: ConnectedClient has no room for them otherwise (it stays small).
    if (decision.authorizedSub) client.authorizedSub = decision.authorizedSub;
    if (decision.authorizedPub) client.authorizedPub = decision.authorizedPub;
  }
  // A cluster node first takes the client id (and its session) from the node that holds it.
  const taking = broker.cluster?.takeOver(conn, client.clientId, client.username);
  if (taking) {
    taking.then(
      () => accept(broker, conn, p, client, decision, assigned, authProps),
      (e: Error & { reasonCode?: number }) => {
        broker.log(`refused client ${escapeForLog(client.clientId)}: ${e.message}`);
        refuse(conn, e.reasonCode ?? 0x80);
      },
    );
    return;
  }
  const clientId = client.clientId;
  const v5 = conn.version === 5;
  const props = p.properties;
  if (v5) {
    conn.setClientLimits(
      props?.receiveMaximum ?? 65535,
      props?.maximumPacketSize ?? 0,
      broker.options.outgoingTopicAliases ? props?.topicAliasMaximum ?? 0 : 0,
    );
  }
  const expiry = v5 ? (props?.sessionExpiryInterval ?? 0) : (p.clean ? 0 : NEVER_EXPIRES);

  let session = broker.sessions.get(clientId);
  // A client id held by another user's session (connected or offline) is not theirs to resume,
  // take over or end: that would hand them its queued and future messages.
  if (session && session.username !== client.username && !broker.options.allowCrossUserSession) {
    // Not authorized (3.1.1: 5)
    return refuse(conn, 0x87, undefined, "its session belongs to another user");
  }
  // Take over a connected client with the same id [MQTT-3.1.4-2].
  const old = session?.connection;
  if (session && old) {
    session.connection = undefined;
    old.session = undefined;
    if (old.connected) broker.markDisconnected(old);
    const will = session.will;
    session.will = undefined;
    // A 5.0 will with a delay is not sent when the session continues [MQTT-3.1.3-9].
    const continues = !p.clean && (will?.properties?.willDelayInterval ?? 0) > 0;
    if (will && old.publishWillOnClose && !continues) broker.publishWill(clientId, will);
    old.publishWillOnClose = false;
    old.close(0x8e); // Session taken over
  }
  let sessionPresent = false;
  if (session && p.clean) {
    // Clean Session / Clean Start ends it [MQTT-3.1.2-6]; a will waiting for its delay goes now
    // (5.0 3.1.3.2.2: until the delay passes or the session ends).
    broker.endSession(session);
    session = undefined;
  }
  if (session) {
    sessionPresent = true; // [MQTT-3.2.2-2]
    broker.deadlines.clearExpiry(session);
    // Resumed in time: the delayed will is not sent.
    if (broker.deadlines.clearWill(session)) session.pendingWill = undefined;
    session.expiryInterval = expiry;
    session.username = client.username;
    recheckSubscriptions(broker, session, client);
  } else {
    session = new Session(clientId, expiry, client.username);
    broker.sessions.set(clientId, session);
  }
  // The will lives as long as the connection: do not pin the CONNECT's socket chunk.
  // A will the client may not publish is not stored.
  const will = p.will && broker.mayPublish(client, p.will.topic, p.will.qos, p.will.retain)
    ? { ...p.will, payload: p.will.payload.slice() }
    : undefined;
  session.will = will;
  session.connection = conn;
  conn.session = session;
  broker.journal?.opened(session, client.username, conn.version);

  // A keep-alive above the configured maximum (or 0) is replaced by ours (5.0: Server Keep Alive).
  const max = broker.options.maxKeepAlive ?? 0;
  const keepAlive = max > 0 && (p.keepAlive === 0 || p.keepAlive > max) && v5 ? max : p.keepAlive;
  const ack: Properties | undefined = v5
    ? { ...connackProperties(broker, assigned ? clientId : undefined), ...authProps }
    : undefined;
  if (ack && keepAlive !== p.keepAlive) ack.serverKeepAlive = keepAlive;
  const info = broker.options.responseInformation;
  if (ack && info && props?.requestResponseInformation === 1) {
    ack.responseInformation = info.replaceAll("{clientId}", clientId);
  }
  conn.send({ type: 2, sessionPresent, reasonCode: 0, properties: ack });
  conn.connected = true;
  broker.markConnected();
  conn.setKeepAlive(keepAlive);
  broker.notify("onConnected", client);
  if (sessionPresent) {
    resendInflight(session, conn, broker.limits);
    drainQueue(session, broker.limits);
  }
}

/**
 * A resumed session keeps only the subscriptions its (new) user may still make: rights can
 * change between connections, and another user may resume it (allow-cross-user-session).
 */
function recheckSubscriptions(broker: Broker, session: Session, client: ClientInfo): void {
  let removed = 0;
  for (const sub of [...session.subscriptions.values()]) {
    if (broker.maySubscribe(client, sub.filter, sub.qos)) continue;
    broker.removeSubscription(session, sub.filter);
    removed++;
  }
  if (removed > 0) {
    broker.log(
      `client ${escapeForLog(client.clientId)}: ${removed} subscription(s) of its resumed ` +
        `session removed, not allowed for user ${escapeForLog(client.username ?? "(none)")}`,
    );
  }
}

/** What the broker tells a 5.0 client about itself and its limits. */
function connackProperties(broker: Broker, assignedClientIdentifier?: string): Properties {
  const o = broker.options;
  const props: Properties = {
    receiveMaximum: Math.min(o.maxInflight, 65535),
    maximumPacketSize: o.maximumPacketSize,
    topicAliasMaximum: o.topicAliasMaximum ?? TOPIC_ALIAS_MAXIMUM,
    retainAvailable: 1,
    wildcardSubscriptionAvailable: 1,
    subscriptionIdentifierAvailable: 1,
    sharedSubscriptionAvailable: o.shareTopic.enable ? 1 : 0,
  };
  if (assignedClientIdentifier) props.assignedClientIdentifier = assignedClientIdentifier;
  return props;
}

/**
 * A connection's ClientInfo. The address is read from the transport when a
 * hook asks: an idle client does not keep an "ip:port" string of its own.
 */
class ConnectedClient implements ClientInfo {
  // `declare`: written only when there is one (see Connection: smaller objects on JSC).
  declare readonly certificate: PeerCertificate | undefined;
  declare authorizedSub?: string[];
  declare authorizedPub?: string[];
  constructor(
    readonly clientId: string,
    readonly username: string | undefined,
    readonly protocolVersion: ProtocolVersion,
    private readonly transport: Conn,
  ) {
    if (transport.peerCertificate) this.certificate = transport.peerCertificate;
  }

  get remoteAddr(): string {
    return this.transport.remoteAddr;
  }
}
