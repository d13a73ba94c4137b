/**
 * The rules the loader checks configuration items against (`SCHEMA`); their
 * defaults (`defaultConfig`) live in defaults.ts and are re-exported here. Field names are the camelCase names
 * of `MqttxConfig`; the file may spell them kebab-case or camelCase.
 */
import { topicFilterError, topicNameError } from "../mqtt/topic.ts";
import { parseCredential } from "../auth/credential.ts";

/** The section holding mqttx items in a config file (as in the original's application.yml). */
export const ROOT = "mqttx";

export { defaultConfig } from "./defaults.ts";

/** Returns a reason when a string value is unacceptable. */
export type Check = (value: string) => string | undefined;

export type Field =
  | { kind: "string"; check?: Check; optional?: boolean }
  | { kind: "int"; min: number; max: number }
  | { kind: "bool" }
  | { kind: "duration" }
  /** `values` in canonical case; the file's spelling is matched case-insensitively. */
  | {
    kind: "enum";
    values: readonly string[];
    fromBool?: { true: string; false: string };
    optional?: boolean;
  }
  | { kind: "strings"; check?: Check }
  | {
    kind: "records";
    item: Section;
    required: readonly string[];
    defaults: Record<string, unknown>;
    /** A plain string item (or a comma-separated string) stands for `{ [shorthand]: value }`. */
    shorthand?: string;
  }
  | { kind: "section"; fields: Section }
  /** A key of the original mqttx with no meaning here: any value, listed as ignored at start. */
  | { kind: "ignored" }
  /** Another spelling of the field `of` in the same section (the original's name for it). */
  | { kind: "alias"; of: string };

export type Section = Record<string, Field>;

const MAX_INT = 2_147_483_647;
const str: Field = { kind: "string" };
const bool: Field = { kind: "bool" };
const duration: Field = { kind: "duration" };
const port: Field = { kind: "int", min: 0, max: 65535 };
const positive: Field = { kind: "int", min: 1, max: MAX_INT };

const ignored: Field = { kind: "ignored" };

// Plain-text passwords are refused here, where the line is known (auth/users.ts checks again).
const scramHash: Check = (p) =>
  parseCredential(p)
    ? undefined
    : "password is not a SCRAM-SHA-256 hash; create one with `mqttx passwd --hash`";

/** Kafka topic names: letters, digits, `.`, `_`, `-` (the node's broker-id is appended). */
const kafkaTopicPrefixCheck: Check = (p) =>
  /^[A-Za-z0-9._-]{0,200}$/.test(p)
    ? undefined
    : `expected letters, digits, ".", "_" or "-" (a Kafka topic name), got ${JSON.stringify(p)}`;

const brokerIdCheck: Check = (id) =>
  id === "" || /[/+#\s]/.test(id)
    ? `expected a broker id without "/", "+", "#" or spaces (it names $SYS topics), got ${
      JSON.stringify(id)
    }`
    : undefined;

const filter: Check = (f) => {
  const why = topicFilterError(f.replaceAll("%c", "c").replaceAll("%u", "u"));
  return why && `topic filter ${JSON.stringify(f)} ${why}`;
};

const optionalStr: Field = { kind: "string", optional: true };

const hostPort: Check = (b) =>
  /^[^\s:]+:\d{1,5}$|^\[[0-9a-fA-F:]+\]:\d{1,5}$/.test(b)
    ? undefined
    : `expected host:port, got ${JSON.stringify(b)}`;

/** An MQTT topic name once `{key}` and `{topic}` are filled in. */
const mqttTemplate: Check = (t) => {
  const why = topicNameError(t.replaceAll("{key}", "k").replaceAll("{topic}", "t"));
  return why && `topic ${JSON.stringify(t)} ${why}`;
};

const redisUrl: Check = (u) => {
  if (!URL.canParse(u) || !/^rediss?:$/.test(new URL(u).protocol)) {
    return `expected a URL such as redis://127.0.0.1:6379, got ${JSON.stringify(u)}`;
  }
  return undefined;
};

const bridgeUrl: Check = (u) => {
  if (!URL.canParse(u) || !/^(mqtts?|wss?):$/.test(new URL(u).protocol)) {
    return `expected a URL such as mqtt://broker.example.com:1883 (mqtt, mqtts, ws, wss), got ${
      JSON.stringify(u)
    }`;
  }
  return undefined;
};

/** A bridge name is a topic level in $SYS and part of the default client id. */
const bridgeName: Check = (n) =>
  /^[A-Za-z0-9._-]+$/.test(n)
    ? undefined
    : `expected letters, digits, '.', '_' or '-', got ${JSON.stringify(n)}`;

/** A topic prefix: no wildcards (may be empty, usually ends with '/'). */
const topicPrefix: Check = (p) =>
  /[+#]/.test(p) || p.includes("\0")
    ? `a prefix may not contain '+', '#' or NUL, got ${JSON.stringify(p)}`
    : undefined;

const urlPath: Check = (p) =>
  p.startsWith("/") ? undefined : `expected a path starting with "/", got ${JSON.stringify(p)}`;

const httpUrl: Check = (u) => {
  if (!URL.canParse(u) || !/^https?:$/.test(new URL(u).protocol)) {
    return `expected an http(s) URL, got ${JSON.stringify(u)}`;
  }
  return undefined;
};

/** Every key under `mqttx:`; the shape mirrors MqttxConfig. */
export const SCHEMA: Section = {
  version: str,
  // A string, as in the original 1.2.3 ("001"); a number keeps its written form.
  brokerId: { kind: "string", check: brokerIdCheck },
  heartbeat: duration,
  host: str,
  soBacklog: positive,
  enableTopicSubPubSecure: bool,
  enableInnerCache: bool,
  enableTestMode: bool,
  serializeStrategy: { kind: "enum", values: ["JSON", "KRYO"] },
  ignoreClientSelfPub: bool,
  // 268435455 is the largest remaining length MQTT can express.
  maxBytesInMessage: { kind: "int", min: 1, max: 268_435_455 },
  // Packet identifiers are 16-bit, so no more can be in flight.
  maxInflight: { kind: "int", min: 1, max: 65535 },
  maxQueuedMessages: { kind: "int", min: 0, max: MAX_INT },
  maxSubscriptionsPerClient: { kind: "int", min: 0, max: MAX_INT },
  maxKeepAlive: { kind: "int", min: 0, max: 65535 },
  // Keys of the original 1.2.3 (and 1.0) MqttxConfig that mean nothing here.
  httpClientConnectTimeout: ignored,
  enableMessageBridge: ignored,
  sharablePayload: ignored,
  allowCrossUserSession: bool,
  warmUp: bool,
  mqtt5: {
    kind: "section",
    fields: {
      topicAliasMaximum: { kind: "int", min: 0, max: 65535 },
      outgoingTopicAliases: bool,
      responseInformation: str,
      serverReference: { kind: "string", optional: true },
      serverMoved: bool,
    },
  },
  listeners: {
    kind: "records",
    item: {
      type: { kind: "enum", values: ["tcp", "tls", "ws", "wss"] },
      port,
      host: { kind: "string", optional: true },
      path: { kind: "string", optional: true, check: urlPath },
    },
    required: ["type", "port"],
    defaults: {},
  },
  acl: {
    kind: "section",
    fields: {
      enable: bool,
      defaultPolicy: { kind: "enum", values: ["allow", "deny"] },
      rules: {
        kind: "records",
        item: {
          permission: { kind: "enum", values: ["allow", "deny"] },
          action: { kind: "enum", values: ["publish", "subscribe", "both"] },
          topic: { kind: "string", check: filter },
          username: { kind: "string", optional: true },
          clientId: { kind: "string", optional: true },
        },
        required: ["permission", "topic"],
        defaults: { action: "both" },
      },
    },
  },
  redis: {
    kind: "section",
    fields: {
      url: { kind: "string", check: redisUrl },
      clusterSessionHashKey: str,
      topicPrefix: str,
      retainMessagePrefix: str,
      pubMsgSetPrefix: str,
      pubRelMsgSetPrefix: str,
      topicSetKey: str,
      messageIdPrefix: str,
      clientTopicSetPrefix: str,
      msgPayLoadKey: str,
      msgPayLoadClientsSetKey: str,
    },
  },
  cluster: {
    kind: "section",
    fields: {
      innerCacheConsistencyKey: str,
      enable: bool,
      type: { kind: "enum", values: ["redis", "kafka"] },
      heartbeatInterval: duration,
      nodeTimeout: duration,
      kafkaBrokers: { kind: "strings", check: hostPort },
      kafkaTopicPrefix: { kind: "string", check: kafkaTopicPrefixCheck },
      kafkaBufferSize: positive,
      reusePort: bool,
    },
  },
  ssl: {
    kind: "section",
    fields: {
      enable: bool,
      keyStoreLocation: str,
      keyStorePassword: str,
      keyStoreType: str,
      clientAuth: {
        kind: "enum",
        values: ["NONE", "OPTIONAL", "REQUIRE"],
        fromBool: { true: "REQUIRE", false: "NONE" },
      },
      certFile: { kind: "string", optional: true },
      keyFile: { kind: "string", optional: true },
      caFile: { kind: "string", optional: true },
      useCnAsUsername: bool,
    },
  },
  socket: { kind: "section", fields: { enable: bool, port } },
  websocket: {
    kind: "section",
    fields: { enable: bool, port, path: { kind: "string", check: urlPath } },
  },
  shareTopic: {
    kind: "section",
    fields: {
      enable: bool,
      shareSubStrategy: { kind: "enum", values: ["round", "random", "hash"] },
    },
  },
  sysTopic: { kind: "section", fields: { enable: bool, interval: duration, qos: ignored } },
  messageBridge: {
    kind: "section",
    fields: {
      enable: bool,
      // A plain string is the original's form: `topics: [a/b, c]` (filters allowed now).
      topics: {
        kind: "records",
        item: { topic: { kind: "string", check: filter }, kafkaTopic: optionalStr },
        required: ["topic"],
        defaults: {},
        shorthand: "topic",
      },
      kafkaBrokers: { kind: "strings", check: hostPort },
      clientId: str,
      key: { kind: "enum", values: ["client-id", "topic"] },
      batchSize: { kind: "int", min: 1, max: 1_000_000 },
      linger: duration,
      compression: { kind: "enum", values: ["none", "gzip"] },
      acks: { kind: "enum", values: ["all", "leader", "none"] },
      bufferSize: positive,
      ackAfterKafka: bool,
      shutdownTimeout: duration,
      tls: {
        kind: "section",
        fields: {
          enable: bool,
          caFile: optionalStr,
          certFile: optionalStr,
          keyFile: optionalStr,
          rejectUnauthorized: bool,
        },
      },
      sasl: {
        kind: "section",
        fields: {
          mechanism: {
            kind: "enum",
            values: ["none", "plain", "scram-sha-256", "scram-sha-512"],
          },
          username: str,
          password: str,
        },
      },
      groupId: str,
      fromKafka: {
        kind: "records",
        item: {
          kafkaTopic: str,
          mqttTopic: { kind: "string", check: mqttTemplate },
          qos: { kind: "int", min: 0, max: 2 },
          retain: bool,
        },
        required: ["kafkaTopic", "mqttTopic"],
        defaults: { qos: 0, retain: false },
      },
    },
  },
  store: {
    kind: "section",
    fields: {
      type: { kind: "enum", values: ["memory", "sqlite", "redis"], optional: true },
      path: str,
      synchronous: { kind: "enum", values: ["full", "normal"] },
    },
  },
  bridges: {
    kind: "records",
    item: {
      name: { kind: "string", check: bridgeName },
      url: { kind: "string", check: bridgeUrl },
      clientId: { kind: "string", optional: true },
      username: { kind: "string", optional: true },
      password: { kind: "string", optional: true },
      caFile: { kind: "string", optional: true },
      certFile: { kind: "string", optional: true },
      keyFile: { kind: "string", optional: true },
      protocolVersion: { kind: "int", min: 4, max: 5 },
      keepalive: { kind: "int", min: 0, max: 65535 },
      cleanStart: bool,
      queueMax: positive,
      reconnectDelay: duration,
      reconnectMaxDelay: duration,
      topics: {
        kind: "records",
        item: {
          filter: { kind: "string", check: filter },
          direction: { kind: "enum", values: ["out", "in", "both"] },
          qos: { kind: "int", min: 0, max: 2 },
          localPrefix: { kind: "string", check: topicPrefix },
          remotePrefix: { kind: "string", check: topicPrefix },
        },
        required: ["filter"],
        defaults: { direction: "out", qos: 2, localPrefix: "", remotePrefix: "" },
      },
    },
    required: ["name", "url", "topics"],
    defaults: {
      protocolVersion: 5,
      keepalive: 60,
      cleanStart: false,
      queueMax: 100_000,
      reconnectDelay: 1_000,
      reconnectMaxDelay: 30_000,
    },
  },
  rateLimiter: {
    kind: "section",
    fields: {
      enable: bool,
      topicRateLimits: {
        kind: "records",
        item: {
          topic: { kind: "string", check: filter },
          capacity: positive,
          replenishRate: positive,
          tokenConsumedPerAcquire: positive,
        },
        required: ["topic", "capacity", "replenishRate"],
        defaults: { tokenConsumedPerAcquire: 1 },
      },
    },
  },
  http: {
    kind: "section",
    fields: { enable: bool, host: str, port, token: { kind: "string", optional: true } },
  },
  log: {
    kind: "section",
    fields: {
      level: { kind: "enum", values: ["error", "warn", "info", "debug"] },
      format: { kind: "enum", values: ["text", "json"] },
    },
  },
  auth: {
    kind: "section",
    fields: {
      allowAnonymous: bool,
      isMandatory: bool,
      users: {
        kind: "records",
        item: {
          username: str,
          password: { kind: "string", check: scramHash },
          authorizedSub: { kind: "strings" },
          authorizedPub: { kind: "strings" },
        },
        required: ["username", "password"],
        defaults: { authorizedSub: [], authorizedPub: [] },
      },
      passwordFile: { kind: "string", optional: true },
      connectRatePerMinute: { kind: "int", min: 0, max: MAX_INT },
      url: { kind: "string", optional: true, check: httpUrl },
      readTimeout: duration,
      /** The original's name for the HTTP service's request timeout. */
      timeout: { kind: "alias", of: "readTimeout" },
      connectTimeout: duration,
    },
  },
};

/** `maxBytesInMessage` → `max-bytes-in-message`: how keys are shown in messages. */
export function kebab(name: string): string {
  return name.replace(/[A-Z]/g, (c) => "-" + c.toLowerCase());
}

/**
 * Spring's relaxed binding, simplified: `web-socket`, `webSocket`,
 * `websocket` and `WEB_SOCKET` are all the same key.
 */
export function normalizeKey(key: string): string {
  return key.replace(/[-_]/g, "").toLowerCase();
}
