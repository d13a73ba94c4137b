/**
 * Messages the broker did not deliver, counted by reason, and the rate-limited
 * log line that names a client losing its own messages.
 */
import { escapeForLog } from "../log/escape.ts";
import type { Session } from "./session.ts";

/** The agreed shape of `broker.stats.dropped` ($SYS, benchmarks, tests). */
export interface DropCounters {
  /** The session's queue (QoS 1/2) or its connection's output backlog (QoS 0) was full. */
  queueFull: number;
  /** Larger than the client's Maximum Packet Size [MQTT-3.1.2-25]. */
  tooLarge: number;
  /** Message Expiry Interval passed while it waited [MQTT-3.3.2-5]. */
  expired: number;
  /** The receiving client may not read the topic (checked at delivery). */
  notAuthorized: number;
  rateLimited: number;
}

export function newDropCounters(): DropCounters {
  return { queueFull: 0, tooLarge: 0, expired: 0, notAuthorized: 0, rateLimited: 0 };
}

/** One line per session per minute at most, and one line per second for the whole broker. */
const SESSION_LOG_MS = 60_000;
const BROKER_LOG_MS = 1000;

export class DropLog {
  private last = 0;
  /** Notices held back by the broker-wide limit since the last line. */
  private held = 0;

  constructor(private readonly log: ((line: string) => void) | undefined) {}

  /** `session` just lost a message because its queue is full. */
  queueFull(session: Session, limit: number): void {
    if (!this.log) return;
    const now = Date.now();
    if (now - session.lastDropLog < SESSION_LOG_MS) return;
    if (now - this.last < BROKER_LOG_MS) {
      this.held++;
      return;
    }
    this.last = now;
    session.lastDropLog = now;
    const others = this.held > 0 ? ` (${this.held} more notices held back)` : "";
    this.held = 0;
    this.log(
      `client ${escapeForLog(session.clientId)} reads too slowly: queue full ` +
        `(max-queued-messages ${limit}), dropping its new messages; ` +
        `${session.dropped} dropped so far${others}`,
    );
  }
}
