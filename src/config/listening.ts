/**
 * Which listeners a configuration asks for, and what their TLS settings must hold: read by the
 * config loader (errors with their line) and by the transport that starts them.
 */
import type { MqttxConfig } from "./types.ts";

export type ListenerType = "tcp" | "tls" | "ws" | "wss";

export interface ListenerSpec {
  type: ListenerType;
  host: string;
  port: number;
  /** ws/wss only. */
  path: string;
}

/** The listeners the config describes, in start order. */
export function listenerSpecs(config: MqttxConfig): ListenerSpec[] {
  const specs: ListenerSpec[] = [];
  const tls = config.ssl.enable;
  const path = config.websocket.path;
  if (config.socket.enable) {
    specs.push({ type: tls ? "tls" : "tcp", host: config.host, port: config.socket.port, path });
  }
  if (config.websocket.enable) {
    specs.push({ type: tls ? "wss" : "ws", host: config.host, port: config.websocket.port, path });
  }
  for (const l of config.listeners) {
    specs.push({ type: l.type, host: l.host ?? config.host, port: l.port, path: l.path ?? path });
  }
  return specs;
}

/** With a TLS listener: why the key store cannot be read (PEM files need none). */
export function keyStoreTypeProblem(ssl: MqttxConfig["ssl"]): string | undefined {
  const type = ssl.keyStoreType.toLowerCase();
  if (ssl.certFile !== undefined || type === "pkcs12" || type === "p12") return undefined;
  return `${ssl.keyStoreType} key stores are not supported; use pkcs12 (convert with ` +
    "keytool -importkeystore -deststoretype pkcs12) or PEM files (ssl.cert-file, ssl.key-file)";
}

/** Why client certificates cannot be checked: no CA to check them against. */
export function clientAuthProblem(ssl: MqttxConfig["ssl"]): string | undefined {
  if (ssl.clientAuth === "NONE" || ssl.caFile !== undefined) return undefined;
  return `client-auth ${ssl.clientAuth} needs the CA that signs client certificates (ssl.ca-file)`;
}
