/**
 * The broker's counters, read by $SYS and the Prometheus endpoint. Counting
 * happens on the hot path, so it is plain number fields and fixed typed arrays
 * incremented in place: nothing is allocated per message (the text is built
 * only when someone scrapes).
 */

/** Messages the broker did not deliver, by reason (the shape the helpers agreed on). */
export interface DropCounters {
  /** A subscriber's queue (max-queued-messages) was full. */
  queueFull: number;
  /** Larger than the receiving 5.0 client's Maximum Packet Size [MQTT-3.1.2-25]. */
  tooLarge: number;
  /** 5.0 Message Expiry Interval ran out before delivery [MQTT-3.3.2-5]. */
  expired: number;
  /** Refused by an authorization hook. */
  notAuthorized: number;
  /** Refused by a rate-limiter.topic-rate-limits bucket. */
  rateLimited: number;
}

export class BrokerStats {
  /** Application messages accepted for routing (not the broker's own). */
  received = 0;
  /** Deliveries routed to sessions. */
  sent = 0;
  maxConnected = 0;
  /** CONNECTs refused for bad credentials, not authorized or a bad authentication method. */
  authFailures = 0;
  readonly dropped: DropCounters = {
    queueFull: 0,
    tooLarge: 0,
    expired: 0,
    notAuthorized: 0,
    rateLimited: 0,
  };
  /** PUBLISH packets received from clients, by QoS, and their payload bytes. */
  readonly publishIn = new Float64Array(3);
  readonly publishInBytes = new Float64Array(3);
  /** PUBLISH packets written to clients, by QoS, and their payload bytes. */
  readonly publishOut = new Float64Array(3);
  readonly publishOutBytes = new Float64Array(3);
  /** Every byte read from and handed to the transports. */
  networkIn = 0;
  networkOut = 0;
}
