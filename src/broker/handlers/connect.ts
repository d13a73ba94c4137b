import type { ConnackPacket, ConnectPacket, Properties } from "../../mqtt/packet.ts";
import { fitsClient } from "../client_maximum.ts";
import { topicNameError } from "../../mqtt/topic.ts";
import type { Broker } from "../broker.ts";
import type { Connection } from "../connection.ts";
import { drainQueue, resendInflight } from "../delivery.ts";
import { type AuthDecision, type ClientInfo, connackV3Code } from "../hooks.ts";
import { NEVER_EXPIRES } from "../session.ts";
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
  const props = p.properties;
  if (version === 5) {
    // From here on, a refusing CONNACK and AUTH too stay within its Maximum Packet Size.
    conn.setClientLimits(
      props?.receiveMaximum ?? 65535,
      props?.maximumPacketSize ?? 0,
      broker.options.outgoingTopicAliases ? props?.topicAliasMaximum ?? 0 : 0,
    );
  }

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

  conn.identify(clientId, p.username);
  const client: ClientInfo = conn;
  const method = props?.authenticationMethod;
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
    if (decision.anonymous) conn.username = undefined;
    else if (decision.username !== undefined) conn.username = decision.username;
    // Only when given: kept in the connection's extras (an idle one stays small).
    if (decision.authorizedSub) conn.authorizedSub = decision.authorizedSub;
    if (decision.authorizedPub) conn.authorizedPub = decision.authorizedPub;
  }
  const clientId = client.clientId;
  const v5 = conn.version === 5;
  const props = p.properties;
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
  // Before anything is taken over or opened: a CONNACK that cannot fit the client's Maximum
  // Packet Size even trimmed (client_maximum.ts) must leave no session, will or takeover behind.
  if (ack && !fitsClient(conn.clientMaximumPacketSize, connack(false, ack))) {
    return conn.drop("the CONNACK cannot fit the client's Maximum Packet Size");
  }
  // A cluster node first takes the client id (and its session) from the node that holds it.
  const taking = broker.cluster?.takeOver(conn, client.clientId, client.username);
  if (taking) {
    taking.then(
      () => accept(broker, conn, p, client, decision, assigned, authProps),
      (e: Error & { reasonCode?: number }) => {
        broker.log(`refused client ${escapeForLog(client.clientId)}: ${e.message}`);
        refuse(conn, e.reasonCode ?? 0x88); // (the bus or store failed: server unavailable)
      },
    );
    return;
  }
  const expiry = v5 ? (props?.sessionExpiryInterval ?? 0) : (p.clean ? 0 : NEVER_EXPIRES);

  // A client id held by another user's session (connected or offline) is not theirs.
  if (broker.lifecycle.belongsToOther(clientId, client.username)) {
    // Not authorized (3.1.1: 5)
    return refuse(conn, 0x87, undefined, "its session belongs to another user");
  }
  const { session, present: sessionPresent } = broker.lifecycle.open(conn, client, p, expiry);

  conn.send(connack(sessionPresent, ack));
  conn.connected = true;
  broker.markConnected();
  conn.setKeepAlive(keepAlive);
  broker.notify("onConnected", client);
  if (sessionPresent) {
    resendInflight(session, conn, broker.limits);
    drainQueue(session, broker.limits);
  }
}

const connack = (sessionPresent: boolean, properties?: Properties): ConnackPacket => ({
  type: 2,
  sessionPresent,
  reasonCode: 0,
  properties,
});

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
