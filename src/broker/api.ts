/**
 * The public face of the broker core, as the composition root (src/app.ts) and
 * tests see it. The implementation lives in broker.ts.
 */
import type { Conn, StreamConn } from "./conn.ts";
import type { BrokerHooks } from "./hooks.ts";
import type { LingerDeadlines } from "./journal_linger.ts";

/** The default of maxSubscriptionsPerClient (BrokerOptions). */
export const MAX_SUBSCRIPTIONS_PER_CLIENT = 10_000;

export interface BrokerOptions {
  brokerId: string | number;
  /** ms a new connection may take to send CONNECT. */
  connectTimeout: number;
  /** Largest packet accepted, bytes. */
  maximumPacketSize: number;
  /** Unacknowledged QoS 1/2 deliveries per client. */
  maxInflight: number;
  /** Queued deliveries per client (offline or waiting for inflight room). */
  maxQueuedMessages: number;
  /** The original mqttx's ignore-client-self-pub. */
  ignoreClientSelfPub: boolean;
  shareTopic: { enable: boolean; strategy: "round" | "random" | "hash" };
  /**
   * Subscriptions one client may hold (0 = no limit). Default 10,000: each costs ~1.5 KB, so
   * one client cannot take the broker's memory with distinct filters (QA: 200,000 took 300 MB).
   */
  maxSubscriptionsPerClient?: number;
  /**
   * A CONNECT may resume or take over a session created under another user name (its
   * subscriptions are re-checked against the new user's rights). Default false: refused.
   */
  allowCrossUserSession?: boolean;
  /** Longest keep-alive a client may use, seconds (0 = any). 5.0 clients are told via Server Keep Alive. */
  maxKeepAlive?: number;
  /**
   * 5.0 Response Information prefix sent when a client asks for it; "{clientId}"
   * is replaced. Empty = not offered.
   */
  responseInformation?: string;
  /** 5.0 Topic Alias Maximum we accept from clients (0 = none). */
  topicAliasMaximum?: number;
  /** Use topic aliases towards 5.0 clients that allow them. */
  outgoingTopicAliases?: boolean;
  /** Where clients should go instead (5.0 Server Reference on shutdown: 0x9C, or 0x9D if moved). */
  serverReference?: { reference: string; permanent: boolean };
  /** Extension points (auth, ACL, $SYS, bridges), run in order. */
  hooks?: BrokerHooks[];
  /** Where the core writes its few log lines (default: none). */
  log?: (line: string) => void;
  /**
   * How long the session journal waits for acknowledgements before it stores
   * deliveries (src/broker/journal_linger.ts; default 10 ms quiet, 100 ms at most).
   * Not a config key: tests that check the linger's turns set them out of reach.
   */
  journalLinger?: LingerDeadlines;
}

export interface BrokerCore {
  /**
   * Serve one connection until it closes. Never throws. A Web-stream pair is
   * accepted too (embedders); it is adapted to the callback path. `listener`
   * tags it for /metrics.
   */
  handleConnection(conn: Conn | StreamConn, listener?: number): void;
  /** Number of connected (CONNACKed) clients. */
  readonly connectedCount: number;
  /** Disconnect every client (5.0: DISCONNECT 0x8B) and stop timers. */
  close(): Promise<void>;
}
