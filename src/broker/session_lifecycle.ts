/**
 * Every change of a session's life: open (new, resumed, clean start), take
 * over from a live connection, the connection's end (will, expiry, shared
 * deliveries handed on), the client's new expiry at DISCONNECT, the stored
 * deadlines (delayed will, expiry) and the end of the session. It owns the
 * broker's session table and deadlines; what a persistent session changes
 * also goes to the journal. Queues and in-flight state change in
 * session_state.ts, subscriptions in session_subscriptions.ts.
 */
import type { ConnectPacket, Will } from "../mqtt/packet.ts";
import type { Broker } from "./broker.ts";
import type { Connection } from "./connection.ts";
import { SessionDeadlines } from "./deadlines.ts";
import type { ClientInfo } from "./hooks.ts";
import { type Message, ownPayload } from "./message.ts";
import { createSession, NEVER_EXPIRES, type Session, writableState } from "./session.ts";
import { clearDeliveries, moveShared } from "./session_state.ts";
import { recheckSubscriptions, removeSubscription } from "./session_subscriptions.ts";
import { escapeForLog } from "../log/escape.ts";

export class SessionLifecycle {
  /** Every session by client id: connected, or persistent and offline. */
  readonly sessions = new Map<string, Session>();
  /** Offline sessions' expiry and delayed wills, checked by the broker's sweep. */
  readonly deadlines = new SessionDeadlines();

  constructor(private readonly broker: Broker) {}

  /** Wills and expiries that are due. */
  sweep(now: number): void {
    this.deadlines.sweep(now, (s) => this.publishDelayedWill(s), (s) => this.end(s));
  }

  /**
   * The session of `clientId` is another user's (connected or offline): not theirs to
   * resume, take over or end, which would hand them its queued and future messages.
   */
  belongsToOther(clientId: string, username: string | undefined): boolean {
    const session = this.sessions.get(clientId);
    return session !== undefined && session.username !== username &&
      !this.broker.options.allowCrossUserSession;
  }

  /**
   * CONNECT accepted: take over a connected client with the same id, end the old session
   * on a clean start, else resume it; or open a new one. `present`: resumed [MQTT-3.2.2-2].
   */
  open(
    conn: Connection,
    client: ClientInfo,
    p: ConnectPacket,
    expiry: number,
  ): { session: Session; present: boolean } {
    const broker = this.broker;
    const clientId = client.clientId;
    let session = this.sessions.get(clientId);
    // Clean Session / Clean Start ends it [MQTT-3.1.2-6]; so does taking over a connection whose
    // session lasts only as long as that connection (3.1.1 clean session, 5.0 expiry 0).
    const ends = p.clean || (session?.connection !== undefined && session.expiryInterval === 0);
    if (session?.connection) this.takeOver(session, session.connection, ends);
    let present = false;
    if (session && ends) {
      // A will waiting for its delay goes now (5.0 3.1.3.2.2: until the delay passes or the
      // session ends).
      this.end(session);
      session = undefined;
    }
    if (session) {
      present = true;
      this.deadlines.clearExpiry(session);
      const s = writableState(session);
      // Resumed in time: the delayed will is not sent.
      if (this.deadlines.clearWill(session)) s.pendingWill = undefined;
      s.expiryInterval = expiry;
      broker.cluster?.expiryChanged(session);
      s.username = client.username;
      recheckSubscriptions(broker, session, client);
    } else {
      session = createSession(clientId, expiry, client.username);
      this.sessions.set(clientId, session);
    }
    const s = writableState(session);
    // The will lives as long as the connection: do not pin the CONNECT's socket chunk.
    // A will the client may not publish is not stored.
    s.will = p.will && broker.mayPublish(client, p.will.topic, p.will.qos, p.will.retain)
      ? { ...p.will, payload: p.will.payload.slice() }
      : undefined;
    s.connection = conn;
    conn.session = session;
    broker.journal?.opened(session, client.username, conn.version);
    return { session, present };
  }

  /** Take over a connected client with the same id [MQTT-3.1.4-2]. */
  private takeOver(session: Session, old: Connection, clean: boolean): void {
    const s = writableState(session);
    s.connection = undefined;
    old.session = undefined;
    if (old.connected) this.broker.markDisconnected(old);
    const will = s.will;
    s.will = undefined;
    // A 5.0 will with a delay is not sent when the session continues [MQTT-3.1.3-9].
    const continues = !clean && (will?.properties?.willDelayInterval ?? 0) > 0;
    if (will && old.publishWillOnClose && !continues) this.publishWill(session.clientId, will);
    old.publishWillOnClose = false;
    old.close(0x8e); // Session taken over
  }

  /** DISCONNECT set a new Session Expiry Interval (5.0). */
  setExpiry(session: Session, seconds: number): void {
    writableState(session).expiryInterval = seconds > NEVER_EXPIRES ? NEVER_EXPIRES : seconds;
    this.broker.cluster?.expiryChanged(session);
  }

  /**
   * The session's connection ended (not taken over): its will goes or waits for its
   * delay, shared deliveries go to other members, and it ends or waits for its expiry.
   */
  connectionEnded(conn: Connection, shuttingDown: boolean): void {
    const session = conn.session;
    if (!session || session.connection !== conn) return; // taken over, or never connected
    const s = writableState(session);
    s.connection = undefined;
    conn.session = undefined;
    s.replay = undefined; // a retained replay lasts as long as its connection
    if (conn.connected) this.broker.markDisconnected(conn);
    const will = s.will;
    s.will = undefined;
    let willAt: number | undefined;
    if (will && conn.publishWillOnClose) {
      const delay = Math.min(will.properties?.willDelayInterval ?? 0, s.expiryInterval);
      // 5.0 Will Delay: sent later unless the session resumes first [MQTT-3.1.3-9].
      if (delay > 0 && !shuttingDown) willAt = this.delayWill(session, will, delay * 1000);
      else this.publishWill(session.clientId, will);
    }
    this.handOverShared(session);
    // In-flight messages now wait for a reconnect: stop pinning socket chunks.
    for (const o of s.inflight.values()) ownPayload(o.message);
    if (s.expiryInterval === 0) {
      this.end(session);
      return;
    }
    let expiresAt: number | undefined;
    if (s.expiryInterval !== NEVER_EXPIRES && !shuttingDown) {
      expiresAt = this.expireLater(session, s.expiryInterval * 1000);
    }
    session.journal?.metaChanged(session, { expiresAt, willAt });
  }

  /**
   * A shared-subscription member went offline (or its session ends: `ending`): its
   * unacknowledged shared deliveries go to another online member of the same group, if there is
   * one (MQTT 5.0 4.8.2); see moveShared for what moves. A session that ends with no member
   * online gives them to an offline one, still subscribed, rather than drop them (4.8.2: it
   * SHOULD send them to another subscribed client).
   */
  private handOverShared(session: Session, ending = false): void {
    const router = this.broker.router;
    const cluster = this.broker.cluster;
    // Nobody else online: it waits for this member (in flight, with its packet id).
    moveShared(session, (q) => {
      const share = q.share!;
      let target = router.otherMember(share, q.message, session);
      // Online members on other nodes come before offline ones here.
      if (!target && cluster?.handShare?.(share, q.message, false)) return true;
      if (!target && ending) target = router.anyMember(share, q.message, session);
      if (target) {
        router.deliverTo(target, q.message, q.retain, undefined, share);
        return true;
      }
      return ending && (cluster?.handShare?.(share, q.message, true) ?? false);
    });
  }

  /** Publish `will` after `ms` unless the session resumes first; returns when (ms since epoch). */
  delayWill(session: Session, will: Will, ms: number): number {
    writableState(session).pendingWill = will;
    const at = Date.now() + ms;
    this.deadlines.setWill(session, at);
    return at;
  }

  /** End the offline `session` after `ms`; returns when (ms since epoch). */
  expireLater(session: Session, ms: number): number {
    const at = Date.now() + ms;
    this.deadlines.setExpiry(session, at);
    return at;
  }

  /** A will's delay has passed [MQTT-3.1.3-9]. */
  private publishDelayedWill(session: Session): void {
    const s = writableState(session);
    const will = s.pendingWill;
    s.pendingWill = undefined;
    if (!will) return;
    this.publishWill(session.clientId, will);
    session.journal?.metaChanged(session, { willAt: undefined });
  }

  /**
   * A session's time is up: a will still waiting for its delay is sent now [MQTT-3.1.3-9], and
   * its unacknowledged shared deliveries go to another member (5.0 4.8.2).
   */
  end(session: Session): void {
    this.handOverShared(session, true);
    const s = writableState(session);
    if (this.deadlines.clearWill(session) && s.pendingWill) {
      this.publishWill(session.clientId, s.pendingWill);
    }
    s.pendingWill = undefined;
    this.destroy(session);
  }

  /** End a session for good: its subscriptions, queue and deadlines go [MQTT-3.1.2-6]. */
  destroy(session: Session): void {
    session.journal?.deleted(session); // before the removals below, which it need not write
    for (const filter of [...session.subscriptions.keys()]) {
      removeSubscription(this.broker, session, filter);
    }
    this.deadlines.clearExpiry(session);
    this.deadlines.clearWill(session);
    clearDeliveries(session);
    if (this.sessions.get(session.clientId) === session) this.sessions.delete(session.clientId);
  }

  /** Another cluster node holds the session now: forget it here without writing the store. */
  forget(session: Session): void {
    session.journal = undefined;
    this.destroy(session);
  }

  /**
   * Handed to another cluster node, kept here a moment only to pass its messages on: nothing of
   * it is written here any more, and its expiry and will are the other node's.
   */
  handedAway(session: Session): void {
    session.journal = undefined;
    this.deadlines.clearExpiry(session);
    this.deadlines.clearWill(session);
    const s = writableState(session);
    s.pendingWill = undefined;
    s.will = undefined;
  }

  /** Loaded from the store (restore.ts): registered, its state filled in by the caller. */
  restored(clientId: string, expiryInterval: number, username: string | undefined): Session {
    const session = createSession(clientId, expiryInterval, username); // its owner
    this.sessions.set(clientId, session);
    return session;
  }

  /** Publish a will message [MQTT-3.1.2-8]. */
  publishWill(clientId: string, will: Will): void {
    const r = this.broker.publish(willMessage(clientId, will));
    if (r instanceof Promise) {
      r.catch((e) => this.broker.log(`will of ${escapeForLog(clientId)}: ${e}`));
    }
  }
}

/** The message a will becomes [MQTT-3.1.2-8]: its delay and expiry interval are not forwarded. */
export function willMessage(clientId: string, will: Will): Message {
  const props = will.properties;
  const expiry = props?.messageExpiryInterval;
  return {
    topic: will.topic,
    payload: will.payload,
    qos: will.qos,
    retain: will.retain,
    properties: forwardedWillProperties(props),
    expiresAt: expiry !== undefined ? Date.now() + expiry * 1000 : undefined,
    from: clientId,
  };
}

function forwardedWillProperties(props: Will["properties"]) {
  if (!props) return undefined;
  const { willDelayInterval: _d, messageExpiryInterval: _e, ...rest } = props;
  return Object.keys(rest).length > 0 ? rest : undefined;
}
