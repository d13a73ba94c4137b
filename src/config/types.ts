/**
 * The typed configuration, after YAML parsing, key normalisation (kebab-case
 * and camelCase both accepted) and validation. Durations are milliseconds.
 * Names and defaults follow the original Java mqttx `MqttxConfig`; items marked
 * "(ours)" are additions of this port.
 */

export type ShareStrategy = "round" | "random" | "hash";
export type ClientAuth = "NONE" | "OPTIONAL" | "REQUIRE";

export interface MqttxConfig {
  version: string;
  brokerId: number;
  /** Keep-alive used when a client's CONNECT asks for 0? No: the original's default channel heartbeat. ms */
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
  };
  socket: { enable: boolean; port: number };
  websocket: { enable: boolean; port: number; path: string };
  shareTopic: { enable: boolean; shareSubStrategy: ShareStrategy };
  sysTopic: { enable: boolean; interval: number };
  messageBridge: { enable: boolean; topics: string[]; kafkaBrokers: string[] };
  rateLimiter: {
    enable: boolean;
    topicRateLimits: {
      topic: string;
      capacity: number;
      replenishRate: number;
      tokenConsumedPerAcquire: number;
    }[];
  };
  auth: {
    url?: string;
    /** ms */
    readTimeout: number;
    /** ms */
    connectTimeout: number;
  };
}
