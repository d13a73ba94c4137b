import type { AuthPacket, ConnectPacket } from "../../mqtt/packet.ts";
import type { Broker } from "../broker.ts";
import type { Connection } from "../connection.ts";
import type { AuthStep, ClientInfo, EnhancedAuthenticator } from "../hooks.ts";
import { accept, refuse } from "./connect.ts";
import { validReasonCodes } from "../../mqtt/reason_codes.ts";

/** Reason codes of the AUTH packet (5.0, 3.15.2.1). */
const SUCCESS = 0x00;
const CONTINUE = 0x18;
const REAUTHENTICATE = 0x19;

/**
 * CONNECT carried an Authentication Method: run the exchange before CONNACK
 * [MQTT-4.12.0-1]. An unknown method is refused with 0x8C.
 */
export function startEnhancedAuth(
  broker: Broker,
  conn: Connection,
  p: ConnectPacket,
  client: ClientInfo,
  method: string,
  assigned: boolean,
): void | Promise<void> {
  const authenticator = findAuthenticator(broker, method);
  if (!authenticator) return refuse(conn, 0x8c); // Bad authentication method
  conn.auth = { authenticator, session: authenticator.start(client), connect: p, assigned };
  return runStep(broker, conn, p.properties?.authenticationData);
}

/** An AUTH packet from the client: continue an exchange, or re-authenticate [MQTT-4.12.1-1]. */
export function handleAuth(broker: Broker, conn: Connection, p: AuthPacket): void | Promise<void> {
  const state = conn.auth;
  const method = p.properties?.authenticationMethod;
  // AUTH is only valid on a connection that authenticated with the same method [MQTT-4.12.0-7].
  if (!state || method !== state.authenticator.method) return conn.close(0x82);
  if (p.reasonCode === CONTINUE && state.session) {
    return runStep(broker, conn, p.properties?.authenticationData);
  }
  if (p.reasonCode === REAUTHENTICATE && conn.connected && !state.session) {
    state.session = state.authenticator.start(conn.client!);
    return runStep(broker, conn, p.properties?.authenticationData);
  }
  conn.close(0x82);
}

function runStep(
  broker: Broker,
  conn: Connection,
  data: Uint8Array | undefined,
): void | Promise<void> {
  const state = conn.auth!;
  let step: AuthStep | Promise<AuthStep>;
  try {
    step = state.session!.step(data);
  } catch (e) {
    broker.log(`authentication error: ${e}`);
    step = { kind: "fail", reasonCode: 0x80 };
  }
  if (step instanceof Promise) {
    return step.then(
      (s) => applyStep(broker, conn, s),
      (e) => {
        broker.log(`authentication error: ${e}`);
        applyStep(broker, conn, { kind: "fail", reasonCode: 0x80 });
      },
    );
  }
  applyStep(broker, conn, step);
}

function applyStep(broker: Broker, conn: Connection, step: AuthStep): void {
  if (conn.closing) return;
  const state = conn.auth!;
  const method = state.authenticator.method;
  if (step.kind === "continue") {
    conn.send({
      type: 15,
      reasonCode: CONTINUE,
      properties: { authenticationMethod: method, authenticationData: step.data },
    });
    return;
  }
  state.session = undefined;
  const connect = state.connect;
  state.connect = undefined;
  if (step.kind === "fail") {
    if (connect) refuse(conn, step.reasonCode, step.reasonString);
    else {
      // Failed re-authentication: DISCONNECT, with a code DISCONNECT may carry (0x86 may not).
      const code = validReasonCodes[14].has(step.reasonCode) ? step.reasonCode : 0x87;
      conn.close(code, step.reasonString);
    }
    return;
  }
  const authProps = { authenticationMethod: method, authenticationData: step.data };
  if (connect) {
    accept(broker, conn, connect, conn.client!, step.decision, state.assigned, authProps);
  } else {
    // Re-authentication may change the client's rights (e.g. a refreshed token).
    const d = step.decision;
    if (d) {
      conn.client!.authorizedSub = d.authorizedSub;
      conn.client!.authorizedPub = d.authorizedPub;
      conn.readRights = undefined; // answers for the old rights
    }
    conn.send({ type: 15, reasonCode: SUCCESS, properties: authProps });
  }
}

function findAuthenticator(broker: Broker, method: string): EnhancedAuthenticator | undefined {
  for (const h of broker.hooks) {
    const a = h.authenticators?.find((x) => x.method === method);
    if (a) return a;
  }
  return undefined;
}
