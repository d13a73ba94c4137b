/**
 * What the configuration cannot say key by key: items that need each other, or exclude each
 * other. Checked once every key was read, so each error still names its key and line.
 */
import process from "node:process";
import { ConfigError } from "./errors.ts";
import { httpTokenProblem } from "../http/access.ts";
import { topicFilterError } from "../mqtt/topic.ts";
import { kebab, ROOT } from "./schema.ts";
import { type MqttxConfig, storeType } from "./types.ts";
import { clientAuthProblem, keyStoreTypeProblem, listenerSpecs } from "./listening.ts";

/** The config file, and the line of a key path under its mqttx section. */
export interface Where {
  file: string;
  lineOf(names: (string | number)[]): number | undefined;
}

export function checkCombinations(w: Where, c: MqttxConfig): void {
  // A cluster shares sessions, routes and retained messages through Redis: test mode has none.
  if (c.cluster.enable && storeType(c) !== "redis") {
    throw new ConfigError({
      file: w.file,
      key: `${ROOT}.cluster.enable`,
      line: w.lineOf(["cluster", "enable"]),
      reason: c.store.type === undefined
        ? "a cluster needs `enable-test-mode: false` (shared state lives in Redis)"
        : `a cluster needs the Redis store (shared state lives in Redis), not store.type ${c.store.type}`,
    });
  }
  const kafkaBus = c.cluster.enable && c.cluster.type === "kafka";
  if (kafkaBus && c.cluster.kafkaBrokers.length + c.messageBridge.kafkaBrokers.length === 0) {
    throw new ConfigError({
      file: w.file,
      key: `${ROOT}.cluster.kafka-brokers`,
      line: w.lineOf(["cluster", "type"]),
      reason: "`cluster.type` is kafka, so at least one Kafka broker (host:port) is needed " +
        "(here or in message-bridge.kafka-brokers)",
    });
  }
  if (kafkaBus && !/^[A-Za-z0-9._-]+$/.test(c.brokerId)) {
    throw new ConfigError({
      file: w.file,
      key: `${ROOT}.broker-id`,
      line: w.lineOf(["broker-id"]),
      reason: `with \`cluster.type: kafka\` the broker-id names a Kafka topic: use letters, ` +
        `digits, ".", "_" or "-", not ${JSON.stringify(c.brokerId)}`,
    });
  }
  if (c.cluster.reusePort && (!c.cluster.enable || process.platform !== "linux")) {
    throw new ConfigError({
      file: w.file,
      key: `${ROOT}.cluster.reuse-port`,
      line: w.lineOf(["cluster", "reuse-port"]),
      reason: !c.cluster.enable
        ? "needs `cluster.enable: true`: processes sharing a port must be nodes of one cluster"
        : `needs Linux (SO_REUSEPORT spreads connections there only), not ${process.platform}`,
    });
  }
  if (c.cluster.enable && c.cluster.nodeTimeout <= c.cluster.heartbeatInterval) {
    throw new ConfigError({
      file: w.file,
      key: `${ROOT}.cluster.node-timeout`,
      line: w.lineOf(["cluster", "node-timeout"]),
      reason: "must be longer than `cluster.heartbeat-interval`",
    });
  }
  const httpProblem = httpTokenProblem(c.http);
  if (httpProblem) {
    throw new ConfigError({
      file: w.file,
      key: `${ROOT}.http.token`,
      line: w.lineOf(["http", "host"]),
      reason: httpProblem,
    });
  }
  const bridge = c.messageBridge;
  if (bridge.enable && bridge.kafkaBrokers.length === 0) {
    throw new ConfigError({
      file: w.file,
      key: `${ROOT}.message-bridge.kafka-brokers`,
      line: w.lineOf(["message-bridge", "enable"]),
      reason: "`message-bridge.enable` is true, so at least one Kafka broker (host:port) is needed",
    });
  }
  // A certificate is useless without its private key, and the other way round.
  if ((c.ssl.certFile === undefined) !== (c.ssl.keyFile === undefined)) {
    const missing = c.ssl.certFile === undefined ? "cert-file" : "key-file";
    const given = missing === "cert-file" ? "key-file" : "cert-file";
    throw new ConfigError({
      file: w.file,
      key: `${ROOT}.ssl.${missing}`,
      line: w.lineOf(["ssl", given]),
      reason: `\`${given}\` is set, so \`${missing}\` is needed too`,
    });
  }
  checkTls(w, c);
  checkBridges(w, c);
}

/** What one bridge entry cannot say field by field: pairs, unique names, prefix + filter. */
function checkBridges(w: Where, c: MqttxConfig): void {
  const names = new Set<string>();
  c.bridges.forEach((b, i) => {
    const at = (key: string, path: (string | number)[], reason: string) =>
      new ConfigError({
        file: w.file,
        key: `${ROOT}.bridges[${i}].${key}`,
        line: w.lineOf(["bridges", i, ...path]),
        reason,
      });
    if (names.has(b.name)) {
      throw at("name", ["name"], `duplicate bridge name ${JSON.stringify(b.name)}`);
    }
    names.add(b.name);
    if ((b.certFile === undefined) !== (b.keyFile === undefined)) {
      const given = b.certFile === undefined ? "key-file" : "cert-file";
      const missing = given === "key-file" ? "cert-file" : "key-file";
      throw at(missing, [given], `\`${given}\` is set, so \`${missing}\` is needed too`);
    }
    b.topics.forEach((t, j) => {
      for (const side of ["localPrefix", "remotePrefix"] as const) {
        const why = topicFilterError(t[side] + t.filter);
        if (why) {
          throw at(
            `topics[${j}].${kebab(side)}`,
            ["topics", j, side],
            `${kebab(side)} + filter ` +
              `${JSON.stringify(t[side] + t.filter)} ${why} (a prefix usually ends with '/')`,
          );
        }
      }
      if (t.filter.startsWith("$share/")) {
        throw at(
          `topics[${j}].filter`,
          ["topics", j, "filter"],
          "a bridge cannot use a shared subscription",
        );
      }
    });
  });
}

/** With a TLS listener: a key store of a type we read, and a CA when clients must show one. */
function checkTls(w: Where, c: MqttxConfig): void {
  if (!listenerSpecs(c).some((s) => s.type === "tls" || s.type === "wss")) return;
  const problems = [
    ["key-store-type", "key-store-type", keyStoreTypeProblem(c.ssl)],
    ["ca-file", "client-auth", clientAuthProblem(c.ssl)],
  ] as const;
  for (const [key, at, reason] of problems) {
    if (reason) {
      throw new ConfigError({
        file: w.file,
        key: `${ROOT}.ssl.${key}`,
        line: w.lineOf(["ssl", at]),
        reason,
      });
    }
  }
}
