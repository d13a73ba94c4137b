/**
 * Retained messages sent on SUBSCRIBE [MQTT-3.3.1-6], streamed from a cursor over
 * the retained store through the session's flow control: QoS 1/2 only while the
 * inflight window has room and nothing is queued (PUBACK/PUBCOMP call `pump`
 * again), QoS 0 only while the connection's unsent output is small (its drain
 * calls `pump` again). Memory per replay is the cursor, whatever the count: every
 * matching message is delivered, none dropped for lack of room.
 *
 * A replay lasts as long as the connection: one that ends mid-way is not resumed
 * with the session (what was in flight is).
 */
import type { QoS } from "../mqtt/packet.ts";
import { deliver, type DeliveryLimits, inflightWindow } from "./delivery.ts";
import { isExpired, type Message } from "./message.ts";
import { isOnline, type Session, type Subscription } from "./session.ts";

/** Unsent output (bytes) above which a QoS 0 replay waits for the connection to drain. */
const OUTPUT_LIMIT = 64 * 1024;

interface Cursor {
  readonly sub: Subscription;
  readonly source: Iterator<Message>;
  /** The next message, read ahead to learn its QoS before it may be sent. */
  next: Message | undefined;
}

export class RetainedReplays {
  private readonly cursors: Cursor[] = [];
  /** A drain callback is registered: do not register another. */
  private waitingForOutput = false;

  constructor(private readonly session: Session, private readonly limits: DeliveryLimits) {}

  /** Replay `source` to `sub` after whatever is being replayed; a replay of the same filter restarts. */
  static start(
    session: Session,
    sub: Subscription,
    source: Iterator<Message>,
    limits: DeliveryLimits,
  ): void {
    const current = session.replay;
    const replays: RetainedReplays = current instanceof RetainedReplays
      ? current
      : new RetainedReplays(session, limits);
    session.replay = replays;
    replays.cancel(sub.filter);
    replays.cursors.push({ sub, source, next: undefined });
    replays.pump();
  }

  /** Stop replaying to `filter` (unsubscribed or replaced) [MQTT-3.10.4-2]. */
  cancel(filter: string): void {
    const i = this.cursors.findIndex((c) => c.sub.filter === filter);
    if (i >= 0) this.cursors.splice(i, 1);
  }

  /** Send what flow control allows now. */
  pump(): void {
    const session = this.session;
    if (session.replay !== this) return; // abandoned
    const conn = session.connection;
    if (!conn || !isOnline(session)) {
      session.replay = undefined;
      return;
    }
    const limits = this.limits;
    while (this.cursors.length > 0) {
      const c = this.cursors[0];
      const m = c.next ??= nextLive(c.source);
      if (m === undefined) {
        this.cursors.shift();
        continue;
      }
      const qos = Math.min(m.qos, c.sub.qos) as QoS; // [MQTT-3.8.4-6]
      if (qos > 0) {
        // Room in the window, and live messages already queued go first.
        if (session.queue.length > 0) return;
        if (session.inflight.size >= inflightWindow(conn, limits)) return;
      } else if (conn.unsentBytes >= OUTPUT_LIMIT) {
        if (!this.waitingForOutput) {
          this.waitingForOutput = true;
          // Yield to the event loop too: other connections are served between batches.
          conn.afterOutput(() =>
            setTimeout(() => {
              this.waitingForOutput = false;
              this.pump();
            }, 0)
          );
        }
        return;
      }
      c.next = undefined;
      const ids = c.sub.subscriptionId ? [c.sub.subscriptionId] : undefined;
      deliver(session, m, qos, true, ids, limits); // RETAIN set [MQTT-3.3.1-8]
    }
    session.replay = undefined;
  }
}

/** Next message of `source` that has not expired [MQTT-3.3.2-5]. */
function nextLive(source: Iterator<Message>): Message | undefined {
  const now = Date.now();
  for (;;) {
    const r = source.next();
    if (r.done) return undefined;
    if (!isExpired(r.value, now)) return r.value;
  }
}
