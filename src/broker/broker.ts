import type { Conn } from "../runtime/types.ts";
import type { Packet, QoS, Will } from "../mqtt/packet.ts";
import { MemoryStore } from "../store/memory.ts";
import type { Store } from "../store/types.ts";
import type { BrokerCore, BrokerOptions } from "./api.ts";
import { Connection, type PacketSink } from "./connection.ts";
import { deliver, type DeliveryLimits, Qos0Cache } from "./delivery.ts";
import { type Message, ownPayload } from "./message.ts";
import { isOnline, NEVER_EXPIRES, type Queued, Session, type Subscription } from "./session.ts";
import { SharePicker } from "./shared.ts";
import { clearLongTimeout, setLongTimeout } from "./long_timer.ts";
import { TopicIndex } from "./topic_index.ts";
import { dispatch } from "./handlers/dispatch.ts";
import type { AuthDecision, BrokerHooks, ClientInfo } from "./hooks.ts";
import type { ConnectPacket } from "../mqtt/packet.ts";

/** How often connection deadlines (CONNECT, keep-alive) are checked. */
const SWEEP_MS = 250;

/** Longest a publisher waits for a slow subscriber before that subscriber counts as stalled. */
const BACKPRESSURE_LIMIT_MS = 1000;

/** Per-delivery aggregate when one client has several matching subscriptions. */
interface Aggregate {
  qos: QoS;
  retainAsPublished: boolean;
  subscriptionIds: number[] | undefined;
}

/**
 * The runtime-free broker: sessions, the subscription index, routing,
 * retained messages and wills. Connections feed it packets; handlers in
 * ./handlers/ implement each packet's rules.
 */
export class Broker implements BrokerCore, PacketSink {
  readonly options: BrokerOptions;
  readonly store: Store;
  readonly sessions = new Map<string, Session>();
  readonly index = new TopicIndex<Subscription>();
  readonly connections = new Set<Connection>();
  readonly limits: DeliveryLimits;
  readonly sharePicker: SharePicker;
  readonly hooks: BrokerHooks[];
  /** Counters for $SYS and tests. */
  readonly stats = { received: 0, sent: 0, maxConnected: 0 };
  private connected = 0;
  private closed = false;
  // Scratch structures reused by every route() call: routing is synchronous.
  private readonly direct = new Map<Session, Subscription | Aggregate>();
  private readonly groups = new Map<string, Subscription[]>();
  private readonly qos0Cache = new Qos0Cache();
  /** Bumped per routed message: tells route() whether it met a session twice. */
  private routeMark = 0;
  /** Set by close(): called when the last connection has ended. */
  private whenEmpty: (() => void) | undefined;
  /** A live session the last route() filled past its high-water mark. */
  private full: Session | undefined;

  constructor(options: BrokerOptions, store: Store = new MemoryStore()) {
    this.options = options;
    this.store = store;
    this.limits = options;
    this.sharePicker = new SharePicker(options.shareTopic.strategy);
    this.hooks = options.hooks ?? [];
    // One sweep for every connection's CONNECT and keep-alive deadlines; fine
    // enough for 1.5 x keep-alive, and far cheaper than a timer per connection.
    this.sweep = setInterval(
      () => this.checkDeadlines(),
      Math.max(10, Math.min(SWEEP_MS, options.connectTimeout >> 1)),
    );
  }

  private readonly sweep: ReturnType<typeof setInterval>;

  private checkDeadlines(): void {
    const now = Date.now();
    for (const c of this.connections) c.checkDeadlines(now);
  }

  /** Run the authenticate chain: the first hook with an opinion decides. */
  authenticate(
    client: ClientInfo,
    connect: ConnectPacket,
  ): AuthDecision | undefined | Promise<AuthDecision | undefined> {
    const hooks = this.hooks.filter((h) => h.authenticate);
    const step = (i: number): AuthDecision | undefined | Promise<AuthDecision | undefined> => {
      for (; i < hooks.length; i++) {
        const d = hooks[i].authenticate!(client, connect);
        if (d instanceof Promise) {
          const next = i + 1;
          return d.then((r) => (r ? r : step(next)));
        }
        if (d) return d;
      }
      return undefined;
    };
    return step(0);
  }

  mayPublish(client: ClientInfo, topic: string, qos: QoS, retain: boolean): boolean {
    for (const h of this.hooks) {
      if (h.authorizePublish && !h.authorizePublish(client, topic, qos, retain)) return false;
    }
    return true;
  }

  maySubscribe(client: ClientInfo, filter: string, qos: QoS): boolean {
    for (const h of this.hooks) {
      if (h.authorizeSubscribe && !h.authorizeSubscribe(client, filter, qos)) return false;
    }
    return true;
  }

  /** Tell every hook that has `name`; a throwing hook is logged, never fatal. */
  notify<K extends "onConnected" | "onDisconnected" | "onSubscribed" | "onPublished">(
    name: K,
    ...args: Parameters<NonNullable<BrokerHooks[K]>>
  ): void {
    for (const h of this.hooks) {
      const f = h[name] as ((...a: unknown[]) => void) | undefined;
      if (!f) continue;
      try {
        f.apply(h, args);
      } catch (e) {
        this.log(`hook ${name} failed: ${e}`);
      }
    }
  }

  get connectedCount(): number {
    return this.connected;
  }

  handleConnection(conn: Conn): void {
    if (this.closed) {
      conn.close();
      return;
    }
    const c = new Connection(
      this,
      conn,
      this.options.maximumPacketSize,
      this.options.connectTimeout,
    );
    this.connections.add(c);
    c.start();
  }

  handlePacket(conn: Connection, packet: Packet): void | Promise<void> {
    return dispatch(this, conn, packet);
  }

  log(line: string): void {
    this.options.log?.(line);
  }

  /** A connected client's connection is gone (or taken over). */
  markDisconnected(conn: Connection): void {
    this.connected--;
    if (conn.client) this.notify("onDisconnected", conn.client);
  }

  /** Called by the CONNECT handler once CONNACK (success) is sent. */
  markConnected(): void {
    this.connected++;
    if (this.connected > this.stats.maxConnected) this.stats.maxConnected = this.connected;
  }

  /**
   * Accept an application message: keep it as retained if asked, then route
   * it to every matching subscription. Returns how many sessions got it.
   */
  publish(message: Message): number | Promise<number> {
    if (!message.internal) this.stats.received++;
    // Called per message: a plain loop, not notify()'s rest arguments.
    const hooks = this.hooks;
    for (let i = 0; i < hooks.length; i++) {
      const h = hooks[i];
      if (!h.onPublished) continue;
      try {
        h.onPublished(message.topic, message.payload, message.qos, message.retain, message.from);
      } catch (e) {
        this.log(`hook onPublished failed: ${e}`);
      }
    }
    if (message.retain) {
      // An empty retained payload clears the topic and is not stored [MQTT-3.3.1-10/11].
      const stored = this.store.setRetained(
        message.topic,
        message.payload.length === 0 ? undefined : message,
      );
      if (stored) return stored.then(() => this.route(message));
    }
    return this.route(message);
  }

  /** Deliver to matching subscriptions: once per client at its highest QoS, one member per share group. */
  route(message: Message): number {
    this.full = undefined; // only the message being routed now may slow its publisher
    const subs = this.index.matchAll(message.topic);
    const count = this.routeEachOnce(message, subs) ?? this.routeMerged(message, subs);
    this.stats.sent += count;
    return count;
  }

  /**
   * The common case without building anything: no share group among the
   * matches and no session matched twice. Undefined when that is not so.
   */
  private routeEachOnce(message: Message, subs: readonly Subscription[]): number | undefined {
    const n = subs.length;
    if (n > 1) {
      const mark = ++this.routeMark;
      for (let i = 0; i < n; i++) {
        const sub = subs[i];
        if (sub.group || sub.session.routeMark === mark) return undefined;
        sub.session.routeMark = mark;
      }
    } else if (n === 1 && subs[0].group) return undefined;
    // One encoding shared by all subscribers pays only when there are several.
    const cache = n > 1 ? this.qos0Cache : undefined;
    cache?.reset(message);
    const ignoreSelf = this.options.ignoreClientSelfPub;
    let count = 0;
    for (let i = 0; i < n; i++) {
      const sub = subs[i];
      // No Local: not back to the publisher [MQTT-3.8.3-3].
      if ((sub.noLocal || ignoreSelf) && message.from === sub.session.clientId) continue;
      if (this.deliverTo(sub, message, sub.retainAsPublished && message.retain, cache)) {
        this.full = sub.session;
      }
      count++;
    }
    return count;
  }

  /** Overlapping subscriptions and share groups: merge per session, pick one member per group. */
  private routeMerged(message: Message, subs: readonly Subscription[]): number {
    const direct = this.direct;
    const groups = this.groups;
    const ignoreSelf = this.options.ignoreClientSelfPub;
    for (const sub of subs) {
      // No Local: not back to the publisher [MQTT-3.8.3-3].
      if ((sub.noLocal || ignoreSelf) && message.from === sub.session.clientId && !sub.group) {
        continue;
      }
      if (sub.group) {
        const key = sub.group + "\0" + sub.matchFilter;
        const members = groups.get(key);
        if (members) members.push(sub);
        else groups.set(key, [sub]);
        continue;
      }
      const seen = direct.get(sub.session);
      if (!seen) {
        direct.set(sub.session, sub);
        continue;
      }
      // Overlapping subscriptions: deliver once at the highest QoS; 5.0 lists every identifier.
      const agg: Aggregate = "session" in seen
        ? {
          qos: seen.qos,
          retainAsPublished: seen.retainAsPublished,
          subscriptionIds: seen.subscriptionId ? [seen.subscriptionId] : undefined,
        }
        : seen;
      if (sub.qos > agg.qos) agg.qos = sub.qos;
      agg.retainAsPublished ||= sub.retainAsPublished;
      if (sub.subscriptionId) (agg.subscriptionIds ??= []).push(sub.subscriptionId);
      direct.set(sub.session, agg);
    }
    let count = 0;
    const cache = direct.size + groups.size > 1 ? this.qos0Cache : undefined;
    cache?.reset(message);
    for (const [session, s] of direct) {
      const qos = Math.min(message.qos, s.qos) as QoS; // [MQTT-3.8.4-6]
      // The RETAIN flag is cleared on normal delivery unless Retain As Published [MQTT-3.3.1-9].
      const retain = s.retainAsPublished && message.retain;
      const ids = "session" in s
        ? (s.subscriptionId ? [s.subscriptionId] : undefined)
        : s.subscriptionIds;
      if (deliver(session, message, qos, retain, ids, this.limits, cache)) this.full = session;
      count++;
    }
    direct.clear();
    if (groups.size > 0) {
      for (const [key, members] of groups) {
        // (No Local is refused on shared subscriptions at SUBSCRIBE [MQTT-3.8.3-4].)
        const sub = this.sharePicker.pick(key, members, message.from);
        const retain = sub.retainAsPublished && message.retain;
        if (this.deliverTo(sub, message, retain, cache, key)) this.full = sub.session;
        count++;
      }
      groups.clear();
    }
    return count;
  }

  /**
   * After routing a client's message: if it filled a live subscriber's queue,
   * a promise that settles when the publisher may go on (the caller stops
   * reading that publisher meanwhile). Never waits on the publisher itself.
   */
  backpressure(publisher: Session): Promise<void> | undefined {
    const full = this.full;
    this.full = undefined;
    if (!full || full === publisher || !full.connection) return undefined;
    return full.whenRoom(BACKPRESSURE_LIMIT_MS);
  }

  /**
   * Deliver through one subscription: capped at its QoS [MQTT-3.8.4-6], with
   * its identifier. True when the subscriber's queue is full enough that the
   * publisher should wait (see `backpressure`).
   */
  deliverTo(
    sub: Subscription,
    message: Message,
    retain: boolean,
    cache?: Qos0Cache,
    share?: string,
  ): boolean {
    const qos = Math.min(message.qos, sub.qos) as QoS;
    const ids = sub.subscriptionId ? [sub.subscriptionId] : undefined;
    return deliver(sub.session, message, qos, retain, ids, this.limits, cache, share);
  }

  /** The key a subscription has in the index: one entry per client per filter (and share group). */
  indexKey(session: Session, group: string | undefined): string {
    return group === undefined ? session.clientId : group + "\0" + session.clientId;
  }

  addSubscription(sub: Subscription): Subscription | undefined {
    const previous = sub.session.subscriptions.get(sub.filter);
    sub.session.subscriptions.set(sub.filter, sub);
    this.index.add(sub.matchFilter, this.indexKey(sub.session, sub.group), sub);
    return previous;
  }

  removeSubscription(session: Session, filter: string): boolean {
    const sub = session.subscriptions.get(filter);
    if (!sub) return false;
    session.subscriptions.delete(filter);
    this.index.remove(sub.matchFilter, this.indexKey(session, sub.group));
    return true;
  }

  /** End a session for good: its subscriptions, queue and timers go [MQTT-3.1.2-6]. */
  destroySession(session: Session): void {
    for (const filter of [...session.subscriptions.keys()]) {
      this.removeSubscription(session, filter);
    }
    clearLongTimeout(session.expiryTimer);
    if (session.willTimer !== undefined) {
      clearLongTimeout(session.willTimer);
      session.willTimer = undefined;
    }
    session.inflight.clear();
    session.queue.length = 0;
    session.wakeWriters();
    if (this.sessions.get(session.clientId) === session) this.sessions.delete(session.clientId);
  }

  /** Publish a will message [MQTT-3.1.2-8]. */
  publishWill(clientId: string, will: Will): void {
    const props = will.properties;
    const expiry = props?.messageExpiryInterval;
    const message: Message = {
      topic: will.topic,
      payload: will.payload,
      qos: will.qos,
      retain: will.retain,
      properties: forwardedWillProperties(props),
      expiresAt: expiry !== undefined ? Date.now() + expiry * 1000 : undefined,
      from: clientId,
    };
    const r = this.publish(message);
    if (r instanceof Promise) r.catch((e) => this.log(`will of ${clientId}: ${e}`));
  }

  connectionClosed(conn: Connection): void {
    this.connections.delete(conn);
    if (this.connections.size === 0) this.whenEmpty?.();
    const session = conn.session;
    if (!session || session.connection !== conn) return; // taken over, or never connected
    session.connection = undefined;
    conn.session = undefined;
    if (conn.connected) this.markDisconnected(conn);
    const will = session.will;
    session.will = undefined;
    if (will && conn.publishWillOnClose) {
      const delay = Math.min(will.properties?.willDelayInterval ?? 0, session.expiryInterval);
      if (delay > 0 && !this.closed) {
        // 5.0 Will Delay: sent later unless the session resumes first [MQTT-3.1.3-9].
        session.willTimer = setLongTimeout(() => {
          session.willTimer = undefined;
          this.publishWill(session.clientId, will);
        }, delay * 1000);
        session.pendingWill = will;
      } else {
        this.publishWill(session.clientId, will);
      }
    }
    this.handOverShared(session);
    // In-flight messages now wait for a reconnect: stop pinning socket chunks.
    for (const o of session.inflight.values()) ownPayload(o.message);
    session.wakeWriters(); // nobody waits on an offline session
    if (session.expiryInterval === 0) {
      this.endSession(session);
    } else if (session.expiryInterval !== NEVER_EXPIRES && !this.closed) {
      session.expiryTimer = setLongTimeout(
        () => this.endSession(session),
        session.expiryInterval * 1000,
      );
    }
  }

  /**
   * A shared-subscription member went offline: its unacknowledged shared
   * deliveries go to another online member of the same group, if there is one
   * (MQTT 5.0 4.8.2): QoS 1 in flight and anything queued. A QoS 2 message in
   * flight stays: the member may already have it, and exactly once must hold.
   */
  private handOverShared(session: Session): void {
    const moving: Queued[] = [];
    for (const [id, o] of session.inflight) {
      // QoS 2 in flight must be completed with this member [MQTT-4.8.2-4]; only QoS 1 moves.
      if (o.share && o.qos === 1) {
        moving.push(o);
        session.inflight.delete(id);
      }
    }
    if (session.queue.some((q) => q.share)) {
      const keep = session.queue.filter((q) => !q.share);
      for (const q of session.queue) if (q.share) moving.push(q);
      session.queue.length = 0;
      session.queue.push(...keep);
    }
    for (const q of moving) {
      const target = this.otherMember(q.share!, q.message, session);
      if (target) {
        this.deliverTo(target, q.message, q.retain, undefined, q.share);
      } else {
        session.queue.push(q); // nobody else is online: it waits for this member
      }
    }
  }

  private otherMember(share: string, message: Message, not: Session): Subscription | undefined {
    const online: Subscription[] = [];
    for (const sub of this.index.matchAll(message.topic)) {
      if (
        sub.group && sub.session !== not && isOnline(sub.session) &&
        sub.group + "\0" + sub.matchFilter === share
      ) online.push(sub);
    }
    return online.length > 0 ? this.sharePicker.pick(share, online, message.from) : undefined;
  }

  /** A session's time is up: a will still waiting for its delay is sent now [MQTT-3.1.3-9]. */
  endSession(session: Session): void {
    if (session.willTimer !== undefined && session.pendingWill) {
      clearLongTimeout(session.willTimer);
      session.willTimer = undefined;
      this.publishWill(session.clientId, session.pendingWill);
    }
    session.pendingWill = undefined;
    this.destroySession(session);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.sweep);
    // Every connection gone, or 1 s: connectionClosed() settles it when the last one ends.
    const allGone = new Promise<void>((resolve) => {
      const limit = setTimeout(resolve, 1000);
      this.whenEmpty = () => {
        clearTimeout(limit);
        resolve();
      };
    });
    for (const c of this.connections) {
      c.publishWillOnClose = false;
      const ref = this.options.serverReference;
      if (ref) c.close(ref.permanent ? 0x9d : 0x9c, undefined, { serverReference: ref.reference });
      else c.close(0x8b); // Server shutting down
    }
    if (this.connections.size === 0) this.whenEmpty?.();
    await allGone;
    for (const s of this.sessions.values()) {
      clearLongTimeout(s.expiryTimer);
      clearLongTimeout(s.willTimer);
    }
    await this.store.close();
  }
}

function forwardedWillProperties(props: Will["properties"]) {
  if (!props) return undefined;
  const { willDelayInterval: _d, messageExpiryInterval: _e, ...rest } = props;
  return Object.keys(rest).length > 0 ? rest : undefined;
}
