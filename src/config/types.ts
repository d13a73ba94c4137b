/**
 * The typed configuration, after YAML parsing, key normalisation (kebab-case
 * and camelCase both accepted) and validation. Durations are milliseconds.
 * Names and defaults follow the original Java mqttx `MqttxConfig`; items marked
 * "(ours)" are additions of this port.
 */

export type ShareStrategy = "round" | "random" | "hash";
export type ClientAuth = "NONE" | "OPTIONAL" | "REQUIRE";

/** (ours) A bridge to an upstream MQTT broker (src/bridge/mqtt_plugin.ts). */
export interface BridgeConfig {
  name: string;
  /** mqtt://, mqtts://, ws:// or wss:// */
  url: string;
  /** Default `mqttx-bridge-{name}`. */
  clientId?: string;
  username?: string;
  password?: string;
  /** PEM files for mqtts:// and wss://. */
  caFile?: string;
  certFile?: string;
  keyFile?: string;
  protocolVersion: number;
  /** Seconds. */
  keepalive: number;
  cleanStart: boolean;
  /** Messages kept for the upstream while it is unreachable; past it the oldest are dropped. */
  queueMax: number;
  /** ms before the first reconnect attempt; doubles up to reconnectMaxDelay, with jitter. */
  reconnectDelay: number;
  reconnectMaxDelay: number;
  topics: {
    filter: string;
    direction: "out" | "in" | "both";
    qos: number;
    localPrefix: string;
    remotePrefix: string;
  }[];
}

export interface MqttxConfig {
  version: string;
  /** Shown and compared as written ("001" stays "001"). */
  brokerId: string;
  /**
   * ms. How long a new connection may take to send CONNECT before it is closed.
   * (In the original this was the default channel idle heartbeat, replaced by
   * the client's own keep-alive once CONNECT names one.)
   */
  heartbeat: number;
  host: string;
  soBacklog: number;
  enableTopicSubPubSecure: boolean;
  enableInnerCache: boolean;
  /** In-memory store, no cluster. */
  enableTestMode: boolean;
  serializeStrategy: "JSON" | "KRYO";
  /** Original default true; ours false (the MQTT spec delivers a client's own messages). */
  ignoreClientSelfPub: boolean;
  /** Maximum packet size accepted, bytes (original: netty's 8092). */
  maxBytesInMessage: number;
  /** (ours) Unacknowledged QoS 1/2 messages sent to one client at once. */
  maxInflight: number;
  /** (ours) Messages queued for one client (offline or over maxInflight); past it QoS 0 is dropped first. */
  maxQueuedMessages: number;
  /** (ours) Subscriptions one client may hold; 0 = no limit (5.0: SUBACK 0x97 past it). */
  maxSubscriptionsPerClient: number;
  /** (ours) Longest keep-alive a client may ask for, seconds; 0 = no limit. */
  maxKeepAlive: number;
  /** (ours) A client may resume or take over a session created under another user name. */
  allowCrossUserSession: boolean;
  /** (ours) Run a short synthetic load on a throwaway broker before the ports open (JIT warm-up). */
  warmUp: boolean;
  /** (ours) MQTT 5.0 server options. */
  mqtt5: {
    topicAliasMaximum: number;
    outgoingTopicAliases: boolean;
    /** Response Information prefix; "{clientId}" is replaced. Empty = not offered. */
    responseInformation: string;
    /** Server Reference sent on shutdown (0x9C, or 0x9D when serverMoved). */
    serverReference?: string;
    serverMoved: boolean;
  };
  /** (ours) Extra listeners beside socket/websocket, e.g. TLS on 8883 next to TCP on 1883. */
  listeners: {
    type: "tcp" | "tls" | "ws" | "wss";
    port: number;
    host?: string;
    path?: string;
  }[];
  /** (ours) Static topic rules (like Mosquitto's acl_file), first match wins. */
  acl: {
    enable: boolean;
    defaultPolicy: "allow" | "deny";
    rules: {
      permission: "allow" | "deny";
      action: "publish" | "subscribe" | "both";
      topic: string;
      username?: string;
      clientId?: string;
    }[];
  };
  redis: {
    /** (ours) redis://host:port/db used when enable-test-mode is false. */
    url: string;
    clusterSessionHashKey: string;
    topicPrefix: string;
    retainMessagePrefix: string;
    pubMsgSetPrefix: string;
    pubRelMsgSetPrefix: string;
    topicSetKey: string;
    messageIdPrefix: string;
    clientTopicSetPrefix: string;
    msgPayLoadKey: string;
    msgPayLoadClientsSetKey: string;
  };
  cluster: {
    innerCacheConsistencyKey: string;
    enable: boolean;
    type: "redis" | "kafka";
    /** (ours) ms between a node's heartbeats. */
    heartbeatInterval: number;
    /** (ours) ms without a heartbeat after which a node counts as dead (its wills are sent). */
    nodeTimeout: number;
    /** (ours) type kafka: bootstrap servers; empty: message-bridge.kafka-brokers. */
    kafkaBrokers: string[];
    /** (ours) type kafka: topics `<prefix>node.<broker-id>` and `<prefix>all`, groups likewise. */
    kafkaTopicPrefix: string;
    /** (ours) type kafka: messages held while Kafka is down; past it new ones are dropped. */
    kafkaBufferSize: number;
    /** (ours) MQTT listeners bind with SO_REUSEPORT: several nodes on one host share a port. */
    reusePort: boolean;
  };
  ssl: {
    enable: boolean;
    keyStoreLocation: string;
    keyStorePassword: string;
    keyStoreType: string;
    clientAuth: ClientAuth;
    /** (ours) PEM alternative to the key store. */
    certFile?: string;
    keyFile?: string;
    caFile?: string;
    /** (ours) Use the client certificate's subject CN as the username. */
    useCnAsUsername: boolean;
  };
  socket: { enable: boolean; port: number };
  websocket: { enable: boolean; port: number; path: string };
  shareTopic: { enable: boolean; shareSubStrategy: ShareStrategy };
  sysTopic: { enable: boolean; interval: number };
  messageBridge: MessageBridgeConfig;
  /**
   * (ours) Where sessions and retained messages are kept. Without `type`,
   * enable-test-mode decides (true: memory, false: redis); see storeType().
   */
  store: {
    type?: "memory" | "sqlite" | "redis";
    /** SQLite file; relative to the config file's directory. */
    path: string;
    /** SQLite: fsync at every commit (full) or only at checkpoints (normal). */
    synchronous: "full" | "normal";
  };
  /** (ours) Bridges to upstream MQTT brokers, with store-and-forward. */
  bridges: BridgeConfig[];
  rateLimiter: {
    enable: boolean;
    topicRateLimits: {
      topic: string;
      capacity: number;
      replenishRate: number;
      tokenConsumedPerAcquire: number;
    }[];
  };
  /** (ours) The operations HTTP endpoint: /health, /ready, /metrics, /api/v1, dashboard. */
  http: {
    enable: boolean;
    host: string;
    port: number;
    /** Bearer token for /api/v1; needed when host is not a loopback address. */
    token?: string;
  };
  /** (ours) Log lines: the lowest level written, and text or one JSON object per line. */
  log: { level: "error" | "warn" | "info" | "debug"; format: "text" | "json" };
  auth: {
    /** (ours) Clients without credentials may connect when no other rule refuses them. */
    allowAnonymous: boolean;
    /** When the HTTP service times out or fails: refuse (true) or let the other rules decide. */
    isMandatory: boolean;
    /** (ours) Built-in users; passwords as written by `mqttx passwd`. */
    users: {
      username: string;
      password: string;
      authorizedSub: string[];
      authorizedPub: string[];
    }[];
    /** (ours) File of `username:hash` lines written by `mqttx passwd`. */
    passwordFile?: string;
    /** (ours) CONNECT attempts per source address per minute before refusing (0 = no limit). */
    connectRatePerMinute: number;
    url?: string;
    /** ms */
    readTimeout: number;
    /** ms */
    connectTimeout: number;
  };
}

/** Kafka bridge (src/bridge/). Items other than enable/topics are (ours). */
export interface MessageBridgeConfig {
  enable: boolean;
  /** MQTT → Kafka: a filter, or a filter with its Kafka topic template ({topic}). */
  topics: { topic: string; kafkaTopic?: string }[];
  /** Bootstrap servers, host:port. */
  kafkaBrokers: string[];
  clientId: string;
  /** Record key: the publisher's client id (one device, one partition) or the MQTT topic. */
  key: "client-id" | "topic";
  /** Records per produce request, at most. */
  batchSize: number;
  /** ms a record may wait for its batch to fill. */
  linger: number;
  compression: "none" | "gzip";
  acks: "all" | "leader" | "none";
  /** Records held while Kafka is slow or down; past it new ones are dropped and counted. */
  bufferSize: number;
  /** QoS 1/2 on a bridged topic: PUBACK/PUBREC only once Kafka acknowledged the record. */
  ackAfterKafka: boolean;
  /** ms shutdown waits for the buffer to reach Kafka. */
  shutdownTimeout: number;
  tls: {
    enable: boolean;
    caFile?: string;
    certFile?: string;
    keyFile?: string;
    rejectUnauthorized: boolean;
  };
  sasl: {
    mechanism: "none" | "plain" | "scram-sha-256" | "scram-sha-512";
    username: string;
    password: string;
  };
  /** Kafka → MQTT consumer group (one per cluster). */
  groupId: string;
  /** Kafka → MQTT: records of `kafkaTopic` published on `mqttTopic` ({key}, {topic}). */
  fromKafka: { kafkaTopic: string; mqttTopic: string; qos: 0 | 1 | 2; retain: boolean }[];
}

/** The store in use: `store.type`, else what enable-test-mode meant (true: memory, false: redis). */
export function storeType(
  c: Pick<MqttxConfig, "store" | "enableTestMode">,
): "memory" | "sqlite" | "redis" {
  return c.store.type ?? (c.enableTestMode ? "memory" : "redis");
}
