import type { Conn, StreamConn } from "./conn.ts";
import { connFromStreams, isCallbackConn } from "./stream_conn.ts";
import type { Packet, QoS } from "../mqtt/packet.ts";
import { MemoryStore } from "../store/memory.ts";
import type { BatchRider, Store } from "../store/types.ts";
import type { BrokerCore, BrokerOptions } from "./api.ts";
import { Connection, type PacketSink } from "./connection.ts";
import type { DeliveryLimits } from "./delivery.ts";
import { DropLog } from "./drops.ts";
import { ReadRights } from "./read_rights.ts";
import type { Message } from "./message.ts";
import type { Session, Subscription } from "./session.ts";
import { Router } from "./router.ts";
import { SessionJournal } from "./journal.ts";
import type { PendingWrite } from "./journal_write.ts";
import { SessionLifecycle } from "./session_lifecycle.ts";
import type { ClusterLink } from "./cluster_link.ts";
import { changeRetained } from "./retained_change.ts";
import { dispatch } from "./handlers/dispatch.ts";
import type { AuthDecision, BrokerHooks, ClientInfo } from "./hooks.ts";
import type { ConnectPacket } from "../mqtt/packet.ts";
import { BrokerStats } from "./stats.ts";
import { trimPool } from "./out_pool.ts";
import { nodeSuffix } from "../store/ids.ts";

// Moved to the session modules; re-exported for the cluster, which imports them from here.
export { routeFilter } from "./session_subscriptions.ts";
export { willMessage } from "./session_lifecycle.ts";

/** How often connection deadlines (CONNECT, keep-alive) are checked. */
const SWEEP_MS = 250;

/**
 * The runtime-free broker: connections, hooks, publishing (retained,
 * routing, held acknowledgements) and shutdown. Connections feed it packets;
 * handlers in ./handlers/ implement each packet's rules; sessions change only
 * through the session modules (`lifecycle`, see session.ts).
 */
export class Broker implements BrokerCore, PacketSink {
  readonly options: BrokerOptions;
  readonly store: Store;
  /** Opens, resumes, takes over and ends sessions: the only writer of `sessions`. */
  readonly lifecycle: SessionLifecycle = new SessionLifecycle(this);
  /** Every session by client id (connected, or persistent and offline). */
  readonly sessions: ReadonlyMap<string, Session> = this.lifecycle.sessions;
  readonly connections = new Set<Connection>();
  readonly limits: DeliveryLimits;
  /** The subscription index and the routing of one message through it. */
  readonly router: Router;
  readonly hooks: BrokerHooks[];
  /** Writes persistent sessions to the session store; absent in the in-memory mode. */
  readonly journal: SessionJournal | undefined;
  /** Set when this broker is a node of a cluster (src/cluster/node.ts). */
  cluster: ClusterLink | undefined = undefined;
  /** Counters for $SYS, /metrics and tests; `dropped` counts undelivered messages by reason. */
  readonly stats = new BrokerStats();
  /** Open connections per listener (the index the composition root gave handleConnection). */
  readonly connectionsByListener: number[] = [];
  private connected = 0;
  private closed = false;
  /** Set by close(): called when the last connection has ended. */
  private whenEmpty: (() => void) | undefined;

  constructor(options: BrokerOptions, store: Store = new MemoryStore()) {
    this.options = options;
    this.store = store;
    this.hooks = options.hooks ?? [];
    this.limits = {
      maxInflight: options.maxInflight,
      maxQueuedMessages: options.maxQueuedMessages,
      dropped: this.stats.dropped,
      dropLog: new DropLog(options.log),
      readRights: new ReadRights(this.hooks),
    };
    this.router = new Router(options, this.limits);
    this.journal = store.sessions
      ? new SessionJournal(
        store.sessions,
        (id) => this.sessions.get(id),
        (l) => this.log(l),
        options.journalLinger,
        nodeSuffix(options.brokerId),
      )
      : undefined;
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
    const openedBy = now - this.options.connectTimeout;
    for (const c of this.connections) c.checkDeadlines(now, openedBy);
    this.lifecycle.sweep(now);
    trimPool(); // output buffers a burst left in the pool (out_pool.ts)
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
    // Called per message: a plain loop is less code to run and compile than for-of.
    const hooks = this.hooks;
    for (let i = 0; i < hooks.length; i++) {
      const h = hooks[i];
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

  /** `listener`: which listener it came from (counted per listener for /metrics). */
  handleConnection(transport: Conn | StreamConn, listener = 0): void {
    if (this.closed) {
      this.log(`closing ${transport.remoteAddr}: the broker is shutting down`);
      transport.close();
      return;
    }
    // One read path and one write path: a stream pair is adapted at the edge.
    const conn = isCallbackConn(transport) ? transport : connFromStreams(transport as StreamConn);
    const c = new Connection(this, conn, this.options.maximumPacketSize);
    c.listener = listener;
    this.connectionsByListener[listener] = (this.connectionsByListener[listener] ?? 0) + 1;
    this.connections.add(c);
    c.start();
  }

  handlePacket(conn: Connection, packet: Packet, type: number): void | Promise<void> {
    return dispatch(this, conn, packet, type);
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
   * `rider` (LocalClient's) goes with the retained write when that is all the
   * message stores (`retainedOnly`); else it is left to the caller.
   */
  publish(message: Message, rider?: BatchRider): number | Promise<number> {
    if (!message.internal) this.stats.received++;
    // Called per message: a plain loop, not notify()'s rest arguments.
    const hooks = this.hooks;
    this.held = undefined;
    for (let i = 0; i < hooks.length; i++) {
      const h = hooks[i];
      if (h.persistPublish) this.hold(h, message);
      if (!h.onPublished) continue;
      try {
        h.onPublished(message.topic, message.payload, message.qos, message.retain, message.from);
      } catch (e) {
        this.log(`hook onPublished failed: ${e}`);
      }
    }
    if (message.retain) {
      // An empty retained payload clears the topic and is not stored [MQTT-3.3.1-10/11].
      const kept = message.payload.length === 0 ? undefined : message;
      const alone = rider && this.retainedOnly(message) ? rider : undefined;
      const stored = changeRetained(this.store, this.cluster, message.topic, kept, alone);
      if (stored) {
        // Not stored (Redis down): delivered anyway, and kept in memory until the store is back;
        // a QoS 1/2 publisher gets no acknowledgement (the error closes its connection).
        return stored.then(() => this.routeConfirmed(message, false), (e) => {
          const routed = this.route(message);
          void this.cluster?.confirmation(); // not acknowledged anyway
          if (message.qos > 0) throw e;
          return routed;
        });
      }
    }
    // No cluster, or no other node with a route: nothing to forward or confirm.
    if (this.cluster === undefined || !this.cluster.forwarding) return this.routeLocal(message);
    return this.routeConfirmed(message, true);
  }

  /**
   * Whether the retained write is the only store write `message` makes: no hook holds it, no
   * other node may get it, no persistent session subscribes to its topic. (One subscribing
   * while the write is on its way gets the message from it: stored, if at all, with its
   * subscription, in a later batch.)
   */
  private retainedOnly(message: Message): boolean {
    if (this.held || this.cluster !== undefined) return false;
    for (const sub of this.router.index.matchAll(message.topic)) {
      if (sub.session.journal) return false;
    }
    return true;
  }

  /** Clear the retained message of `topic` here and, in a cluster, on every node (admin API). */
  clearRetained(topic: string): void | Promise<void> {
    return changeRetained(this.store, this.cluster, topic, undefined);
  }

  /**
   * Route; in a cluster, the acknowledgement waits until the other nodes that
   * got a QoS 1/2 message stored it: held (the publisher is read on meanwhile)
   * when the caller takes `held` at once, else in the returned promise.
   */
  private routeConfirmed(message: Message, inline: boolean): number | Promise<number> {
    const count = this.route(message);
    if (!inline && message.qos > 0) {
      const carrier = this.journal?.carrier(message);
      if (carrier) this.carriers.set(message, carrier);
    }
    const confirmed = this.cluster?.confirmation();
    if (confirmed === undefined) return count;
    if (!inline) return confirmed.then(() => count);
    this.holding = true;
    this.held = this.held ? joinHeld(this.held, confirmed) : confirmed;
    return count;
  }

  /**
   * QoS 1/2 messages routed only after their retained write, and the session batch that took
   * their deliveries then (journal.carrier): what their acknowledgement must not outlive.
   */
  private readonly carriers = new WeakMap<Message, PendingWrite>();

  /** The batch recorded for `message` by routeConfirmed, taken (read once, by its acknowledgement). */
  takeCarrier(message: Message): PendingWrite | undefined {
    const carrier = this.carriers.get(message);
    if (carrier) this.carriers.delete(message);
    return carrier;
  }

  /**
   * Set by publish() when a persistPublish hook holds the message's acknowledgement, for the
   * caller to take at once (the PUBLISH handler); anyone else leaves it to be overwritten.
   */
  held: Promise<void> | undefined = undefined;
  /** True once any acknowledgement was held: from then on PUBLISH checks for held ones to queue behind. */
  holding = false;

  private hold(h: BrokerHooks, message: Message): void {
    let p: void | Promise<void>;
    try {
      p = h.persistPublish!(message);
    } catch (e) {
      this.log(`hook persistPublish failed: ${e}`);
      p = Promise.reject(e);
    }
    if (!p) return;
    this.holding = true;
    // Whoever takes it handles a refusal; a will or local publish has nobody to tell.
    p.catch(() => {});
    this.held = this.held ? joinHeld(this.held, p) : p;
  }

  /** Deliver to matching subscriptions: once per client at its highest QoS, one member per share group. */
  route(message: Message): number {
    const cluster = this.cluster;
    if (cluster === undefined || !cluster.forwarding) return this.routeLocal(message);
    // First to the other nodes with a matching route (which may take some share groups), then here.
    const remote = cluster.forward(message);
    const count = this.router.route(message);
    this.router.shareFilter = undefined;
    this.stats.sent += count;
    return count + remote; // a node it went to counts as one delivery
  }

  /** To the subscribers here only (a message another node forwarded, or no cluster). */
  routeLocal(message: Message): number {
    const count = this.router.route(message);
    this.stats.sent += count;
    return count;
  }

  /** Deliver through one subscription (see Router.deliverTo). */
  deliverTo(sub: Subscription, message: Message, retain: boolean): void {
    this.router.deliverTo(sub, message, retain);
  }

  connectionClosed(conn: Connection): void {
    this.connections.delete(conn);
    this.connectionsByListener[conn.listener]--;
    if (this.connections.size === 0) this.whenEmpty?.();
    this.lifecycle.connectionEnded(conn, this.closed);
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
    if (this.journal) {
      await this.journal.settled();
      this.journal.close();
    }
    await this.store.close();
  }
}

/** Both held: like each part, the joint promise may be left untaken (a will), so no crash if refused. */
function joinHeld(a: Promise<void>, b: Promise<void>): Promise<void> {
  const both = Promise.all([a, b]).then(() => {});
  both.catch(() => {});
  return both;
}
