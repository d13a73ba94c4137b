/**
 * What every MQTT-over-WebSocket listener (ws:// and wss://, our RFC 6455
 * server, websocket_server.ts) decides about an HTTP request: the
 * subprotocol choice and the short plain answers to requests that are not
 * an MQTT WebSocket upgrade. Runtime-free.
 */

/** Subprotocols we speak: "mqtt" (3.1.1 and 5.0, [MQTT-6.0.0-4]) and "mqttv3.1" (3.1 clients). */
export const MQTT_SUBPROTOCOLS = ["mqtt", "mqttv3.1"] as const;

/**
 * The subprotocol to answer with, from a `Sec-WebSocket-Protocol` request
 * header: the first one offered that we speak (client order, RFC 6455 4.2.2).
 * `null` when none is offered (accepted without a subprotocol: some clients
 * send none), `undefined` when only unknown ones are offered (refused).
 */
export function chooseSubprotocol(header: string | null | undefined): string | null | undefined {
  if (header === null || header === undefined || header.trim() === "") return null;
  const offered = header.split(",").map((p) => p.trim().toLowerCase());
  return offered.find((p) => (MQTT_SUBPROTOCOLS as readonly string[]).includes(p));
}

/** An HTTP request that reached a WebSocket listener, as the upgrade decision needs it. */
export interface UpgradeRequest {
  method: string;
  path: string;
  headers: { get(name: string): string | null };
}

/** What to do with such a request. */
export type UpgradeDecision =
  | { upgrade: true; protocol: string | null }
  | { upgrade: false; status: number; body: string };

/**
 * Decide on a request: wrong path → 404; not a WebSocket upgrade → 426 with a
 * short plain answer; no subprotocol we speak → 400; else upgrade.
 */
export function decideUpgrade(req: UpgradeRequest, path: string): UpgradeDecision {
  if (req.path !== path) {
    return { upgrade: false, status: 404, body: `Not found: MQTT over WebSocket is at ${path}\n` };
  }
  const upgrade = req.headers.get("upgrade")?.toLowerCase();
  if (req.method !== "GET" || upgrade !== "websocket") {
    return {
      upgrade: false,
      status: 426,
      body: `This is an MQTT over WebSocket endpoint (subprotocol "mqtt"); upgrade to WebSocket\n`,
    };
  }
  const protocol = chooseSubprotocol(req.headers.get("sec-websocket-protocol"));
  if (protocol === undefined) {
    return {
      upgrade: false,
      status: 400,
      body: `Unsupported WebSocket subprotocol: offer "mqtt" (or "mqttv3.1")\n`,
    };
  }
  return { upgrade: true, protocol };
}

/** The path part of a request target ("/mqtt?x=1" → "/mqtt"; absolute URLs too). */
export function requestPath(target: string): string {
  let t = target;
  const scheme = t.indexOf("://");
  if (scheme >= 0) {
    const slash = t.indexOf("/", scheme + 3);
    t = slash >= 0 ? t.slice(slash) : "/";
  }
  const q = t.search(/[?#]/);
  return q >= 0 ? t.slice(0, q) : t;
}
