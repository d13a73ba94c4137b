/**
 * The broker's counters, read by $SYS and the Prometheus endpoint. Counting
 * happens on the hot path, so it is plain number fields and fixed typed arrays
 * incremented in place: nothing is allocated per message (the text is built
 * only when someone scrapes).
 */
import { type DropCounters, newDropCounters } from "./drops.ts";

export class BrokerStats {
  /** Application messages accepted for routing (not the broker's own). */
  received = 0;
  /** Deliveries routed to sessions. */
  sent = 0;
  maxConnected = 0;
  /** CONNECTs refused for bad credentials, not authorized or a bad authentication method. */
  authFailures = 0;
  /** Undelivered messages by reason (counted where they are dropped; see drops.ts). */
  readonly dropped: DropCounters = newDropCounters();
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
