/**
 * One broker as a node of a cluster: the glue between the broker core and a
 * ClusterBus.
 *
 * - Routes: the other nodes' filters are cached here (a topic index of node
 *   ids), kept fresh by the bus's route changes and resyncs; a message goes
 *   only to the nodes with a matching filter. While no other node has a
 *   route (`forwarding` false) the broker does not call in at all.
 * - Share groups: one node per group and message (round, random or hash over
 *   the nodes that have members, those with one online first: share_turns.ts);
 *   that node gives it to one of its members.
 * - One connection per client id: a CONNECT here claims the client id; the
 *   node that had it closes its connection (5.0: DISCONNECT 0x8E).
 * - Retained: every node's index is kept the same (retained_sync.ts).
 * - A session moving to another node: what is published meanwhile follows it
 *   (handover.ts).
 * - Wills: kept in the bus while their client is connected, published here
 *   when the bus hands this node the wills of a node that died.
 */
import { type Broker, routeFilter } from "../broker/broker.ts";
import { keptWill, willToPublish } from "./kept_will.ts";
import type { ClusterLink } from "../broker/cluster_link.ts";
import type { BrokerHooks, ClientInfo } from "../broker/hooks.ts";
import type { Message } from "../broker/message.ts";
import { ANNOUNCES_DURABLE } from "./durable_routes.ts";
import { LocalRoutes } from "./local_routes.ts";
import { RouteTable } from "./route_table.ts";
import { ShareTurns } from "./share_turns.ts";
import type { MessageData, RetainedWrite, StoredState } from "../store/types.ts";
import { RemoteAcks } from "./acks.ts";
import { CREDIT_ACK, creditCost } from "./credits.ts";
import { deliverToInherited } from "./heir_delivery.ts";
import { AGAIN, bothKept, Qos2Resends } from "./qos2_resend.ts";
import type { Qos2Memory } from "./qos2_memory.ts";
import { Takeover } from "./takeover.ts";
import { Handover } from "./handover.ts";
import { RouteSync } from "./route_sync.ts";
import { type RetainedCache, RetainedSync } from "./retained_sync.ts";
import { isOnline, type Session } from "../broker/session.ts";
import type { BusHandlers, BusMessage, ClusterBus, NodeId, NodeInfo } from "./types.ts";

export class ClusterNode implements ClusterLink {
  /** The other nodes' routes. */
  private readonly routes = new RouteTable();
  /** This node's routes, as announced to the others. */
  private readonly local = new LocalRoutes((key, present) => this.bus.route(key, present));
  private readonly shares: ShareTurns;
  private readonly targets = new Map<NodeId, string[] | undefined>();
  private stopped = false;
  private readonly acks: RemoteAcks;
  private readonly resends: Qos2Resends;
  /** Makes each QoS 2 message's wait its own (ackId). */
  private qos2Waits = 0;
  private readonly takeovers: Takeover;
  private readonly handover: Handover;
  private readonly routeSync: RouteSync;
  private busUp = true;
  private readonly retainedSync: RetainedSync;
  /** The confirmation of the message forward() sent last, until the broker takes it. */
  private pending: Promise<void> | undefined = undefined;

  constructor(
    private readonly broker: Broker,
    private readonly bus: ClusterBus,
    retainedCache: RetainedCache | undefined,
    strategy: "round" | "random" | "hash",
    ackTimeoutMs: number,
    qos2Memory?: Qos2Memory,
  ) {
    this.shares = new ShareTurns(broker, bus, this.routes, strategy);
    this.resends = new Qos2Resends(qos2Memory);
    this.acks = new RemoteAcks(bus, ackTimeoutMs);
    this.retainedSync = new RetainedSync(bus, retainedCache, (line) => broker.log(line));
    this.routeSync = new RouteSync(bus);
    this.handover = new Handover({
      broker,
      bus,
      acks: this.acks,
      timeoutMs: ackTimeoutMs,
      hold: (stored) => (this.pending = bothKept(this.pending, stored)),
      confirmation: () => this.confirmation(),
      withdraw: (session) => {
        this.local.withdraw(session, [...session.subscriptions.values()].map(routeFilter));
      },
      routesTo: (node, topic) => this.routes.nodes(topic).includes(node),
      routesSeen: () => this.routeSync.all(),
    });
    this.takeovers = new Takeover(
      broker,
      bus,
      ackTimeoutMs,
      (session) => this.announce(session),
      this.handover,
    );
  }

  /** More broker hooks (the Kafka bus's $SYS topic) and what to undo at stop (start.ts). */
  extra: { hooks?: BrokerHooks; stop?: () => void } = {};

  get id(): NodeId {
    return this.bus.nodeId;
  }

  /** Join the cluster; then the broker forwards through this node. */
  async start(): Promise<void> {
    // A resend of a QoS 2 message an earlier run of this node took is not delivered again.
    await this.resends.recall();
    await this.bus.join(this.handlers());
    this.broker.cluster = this;
    // Changes another node made between this store's load and joining the bus reached neither.
    this.retainedSync.resync();
  }

  /** Resolves once no retained resync is running (tests). */
  retainedSettled(): Promise<void> {
    return this.retainedSync.settled();
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.extra.stop?.();
    this.retainedSync.stop();
    this.handover.close();
    this.acks.close();
    await this.bus.leave();
  }

  /**
   * Of the stored sessions, those this node may restore: never one another
   * node claimed last (that node holds it; two nodes must not write one session).
   */
  async ownSessions(state: StoredState): Promise<StoredState> {
    const owners = await this.bus.owners(state.sessions.map((s) => s.clientId));
    const sessions = state.sessions.filter((s) => (owners.get(s.clientId) ?? this.id) === this.id);
    return { sessions, messages: state.messages };
  }

  /** Announce the routes of sessions restored straight into the index. */
  announceRestored(): void {
    for (const session of this.broker.sessions.values()) this.announce(session);
    // Only now: until every restored persistent session's durable routes are out, the others
    // must wait for this node's answer to every QoS 1 message (durable_routes.ts).
    this.bus.route(ANNOUNCES_DURABLE, true);
    this.bus.ready?.();
  }

  /**
   * The store refused these clients' writes (fenced): their sessions belong to another node.
   * `lost`: per client, the messages the refused writes delivered to it.
   */
  fenced(clientIds: readonly string[], lost?: ReadonlyMap<string, ReadonlySet<string>>): void {
    this.takeovers.fenced(clientIds, lost);
  }

  /** See ClusterLink.resendWaits. */
  resendWaits(publisher: string): Promise<void> | undefined {
    return this.handover.rescue.waitFor(publisher);
  }

  takeOver(conn: object, clientId: string, username: string | undefined) {
    return this.takeovers.takeOver(conn, clientId, username);
  }

  /** Routes of a session put straight into the index (restored from the store). */
  private announce(session: Session): void {
    // Announced already (an heir's adoption can come before announceRestored): counted once.
    if (this.local.announced(session)) return;
    for (const sub of session.subscriptions.values()) this.subscribed(routeFilter(sub), session);
  }

  nodes(): readonly NodeInfo[] {
    return this.bus.nodes();
  }

  // ---- ClusterLink (called by the broker core)

  get forwarding(): boolean {
    // While a session moves, a message here may be handed on, and its publisher waits for it.
    return this.routes.any || this.handover.active;
  }

  forward(message: Message): number {
    const nodes = this.routes.nodes(message.topic);
    // The usual case, one node and no share group elsewhere: no map to fill and clear (that
    // cost ~4% of a node forwarding QoS 1 to another in a cross-node S4 profile).
    if (nodes.length <= 1 && this.routes.shares(message.topic).length === 0) {
      if (nodes.length === 0) return 0;
      const node = nodes[0];
      const asked = this.asked(message, node);
      const ack = asked === WAIT ? this.ackId(message, node, 1) : asked;
      const resendOf = this.resendOf(message, ack);
      this.bus.send(node, { kind: "publish", message, ack, resendOf });
      return 1;
    }
    const targets = this.targets;
    for (const node of nodes) targets.set(node, undefined);
    let sent = 0;
    const skip = this.shares.pick(message, targets);
    // The nodes the publisher waits for: any one a share group's message goes to, else asked().
    let waitFor: NodeId[] | undefined;
    const asked: (number | undefined)[] = [];
    for (const [node, shares] of targets) {
      const a = shares ? WAIT : this.asked(message, node);
      asked.push(a);
      if (a === WAIT) (waitFor ??= []).push(node);
    }
    const ack = waitFor && this.ackId(message, waitFor.sort().join("\0"), waitFor.length);
    const resendOf = this.resendOf(message, ack);
    for (const [node, shares] of targets) {
      const own = asked[sent] === WAIT ? ack : asked[sent];
      this.bus.send(node, { kind: "publish", message, shares, ack: own, resendOf });
      sent++;
    }
    targets.clear();
    if (skip) this.broker.router.shareFilter = (key) => !skip.has(key);
    return sent;
  }

  /**
   * A client's QoS 1/2 message: its publisher waits until every node that got it stored it,
   * in one wait per turn and set of nodes (`key`, acks.ts); undefined for no wait.
   */
  private ackId(message: Message, key: string, nodes: number): number | undefined {
    if (message.qos === 0 || message.from === undefined || message.internal) return undefined;
    // A QoS 2 message's ack id is its identity where it is received (qos2_resend.ts): own wait.
    if (message.qos === 2) key += "\0" + this.qos2Waits++;
    const expected = this.acks.expect(key, nodes);
    this.pending = expected.stored;
    return expected.id;
  }

  /** A QoS 2 resend's first ack id (qos2_resend.ts), for a message just given ack id `ack`. */
  private resendOf(message: Message, ack: number | undefined): number | undefined {
    if (ack === undefined || message.qos !== 2) return undefined;
    const first = this.resends.sending(message, ack, this.pending!);
    // Its identity, should a session it reaches be moving (handover.ts), or be a fenced copy
    // here that hands it on later (fenced_rescue.ts): always, it is a QoS 2 message.
    this.handover.origins.set(message, this.id + ":" + (first ?? ack));
    return first;
  }

  /**
   * What `node` is asked about `message`: WAIT, its publisher waits for the answer (QoS 2; QoS 1
   * that a persistent session there wants, or past that node's credit); CREDIT_ACK, on credit
   * (credits.ts, taken here); undefined, nothing (QoS 0, the broker's own messages).
   */
  private asked(message: Message, node: NodeId): number | undefined {
    if (message.qos === 2) return WAIT;
    if (message.qos === 0 || message.from === undefined || message.internal) return undefined;
    if (this.routes.durable.mustAnswer(node, message.topic)) return WAIT;
    return this.acks.credits.take(node, creditCost(message)) ? CREDIT_ACK : WAIT;
  }

  confirmation(): Promise<void> | undefined {
    const p = this.pending;
    this.pending = undefined;
    return p;
  }

  subscribed(filter: string, session: Session): void {
    this.local.subscribed(filter, session);
  }

  unsubscribed(filter: string, session: Session): void {
    this.local.unsubscribed(filter, session);
  }

  expiryChanged(session: Session): void {
    this.local.expiryChanged(session);
  }

  /** Broker hooks: claim client ids, keep wills in the bus. */
  hooks(): BrokerHooks {
    return {
      onConnected: (client) => this.connected(client),
      onDisconnected: (client) => {
        const id = client.clientId;
        this.bus.keepWill(id, undefined);
        const gone = this.broker.sessions.get(id);
        if (gone && !isOnline(gone)) this.local.connected(gone, false);
        // Taken by another node: the kick's hand-over forgets the session here.
        if (this.takeovers.kicked.delete(id)) return;
        // A persistent session stays held here while offline: only a clean one gives up the id.
        const epoch = this.takeovers.epochs.get(id);
        const session = this.broker.sessions.get(id);
        if (
          epoch !== undefined && !session?.connection && !(session && session.expiryInterval > 0)
        ) {
          this.takeovers.epochs.delete(id);
          this.bus.release(id, epoch);
        }
      },
    };
  }

  retained(
    topic: string,
    message: MessageData | undefined,
    stored: void | Promise<RetainedWrite>,
  ): void {
    this.retainedSync.changed(topic, message, stored);
  }

  // ---- internals

  handShare(share: string, message: Message, offline: boolean): boolean {
    return this.busUp && this.shares.handOn(share, message, offline); // (bus down: stays here)
  }

  private connected(client: ClientInfo): void {
    const id = client.clientId;
    // A persistent session's will is in the store: whoever restores the session sends it.
    const session = this.broker.sessions.get(id);
    if (session) this.local.connected(session, true);
    if (session?.will && session.expiryInterval === 0) {
      this.bus.keepWill(id, keptWill(id, session.will));
    }
  }

  private handlers(): BusHandlers {
    return {
      message: (from, msg) => this.received(from, msg),
      route: (node, filter, present) => this.routes.set(node, filter, present),
      routes: (table) => this.routes.replace(table),
      nodeUp: (node) => {
        this.acks.credits.forget(node.id); // (again, once given up for dead) owes nothing
        this.broker.log(`cluster: node ${node.id} joined`);
      },
      nodeDown: (node, wills, heir) => {
        this.routes.drop(node);
        this.acks.credits.forget(node);
        this.routeSync.nodeDown(node);
        this.broker.log(
          `cluster: node ${node} left or stopped answering` +
            (wills.length > 0 ? `; publishing ${wills.length} of its clients' wills` : ""),
        );
        for (const w of wills) {
          const r = this.broker.publish({ ...willToPublish(w), owned: true });
          if (r instanceof Promise) {
            r.catch((e) => this.broker.log(`cluster: a will of ${node}: ${e}`));
          }
        }
        if (heir) void this.inherit(node).finally(() => this.bus.inherited?.(node));
      },
      state: (up) => {
        this.busUp = up;
        this.retainedSync.busState(up);
        if (up) this.acks.credits.forget(); // answers in flight may have been lost with the bus
      },
    };
  }

  /** Heir of dead `node`: take its sessions, then what waits unread for them in the bus. */
  private async inherit(node: NodeId): Promise<void> {
    let taken: string[];
    try {
      taken = await this.takeovers.inherit(node);
    } catch (e) {
      this.broker.log(`cluster: sessions of node ${node} not taken over: ${e}`);
      return;
    }
    if (taken.length > 0) {
      this.broker.log(`cluster: took over ${taken.length} sessions of node ${node}`);
    }
    if (!this.bus.drain || this.stopped) return;
    const inherited = new Set(taken);
    const counts = { delivered: 0, qos2: 0 };
    const r = await this.bus.drain(node, (_, msg) => {
      deliverToInherited(this.broker, msg, inherited, counts);
    });
    this.broker.log(
      `cluster: read ${r.read} messages of node ${node}'s Kafka topic` +
        (r.complete
          ? ""
          : " (stopped before the end: Kafka unreachable, stopping, or no longer its heir)") +
        `; ${counts.delivered} deliveries to its sessions here` +
        (counts.qos2 > 0 ? `, ${counts.qos2} QoS 2 not delivered (may be stored or resent)` : ""),
    );
  }

  private received(from: NodeId, msg: BusMessage): void {
    switch (msg.kind) {
      case "publish": {
        const taken = this.resends.take(from, msg);
        if (taken === AGAIN) {
          // Taken already (qos2_resend.ts): its first copy's sessions may be behind (whenCaughtUp).
          // And a fenced copy here may still be handing it on (fenced_rescue.ts).
          const rescued = this.handover.rescue.waitFor(msg.message.from);
          return this.acks.owe(
            from,
            msg.ack!,
            bothKept(this.broker.journal?.whenCaughtUp(), rescued),
          );
        }
        // (Before routing: the same topic and payload its sender charged, credits.ts.)
        const cost = msg.ack === CREDIT_ACK ? creditCost(msg.message) : 0;
        const router = this.broker.router;
        const shares = msg.shares;
        router.shareFilter = shares ? (key) => shares.includes(key) : NO_SHARES;
        // Decoded for this node alone, its payload a copy (codec.ts): owned, not cloned.
        const message: Message = msg.message;
        const moving = this.handover.active; // (handover.ts: its identity, where it came from)
        if (moving) this.handover.inbound = from;
        // (A QoS 2 message with no wait, the broker's own, has no identity: none is needed.)
        // Always: a fenced copy here may hand it on later (fenced_rescue.ts).
        if (message.qos === 2 && msg.ack !== undefined && msg.ack !== CREDIT_ACK) {
          this.handover.origins.set(message, from + ":" + (msg.resendOf ?? msg.ack));
        }
        try {
          message.owned = true;
          this.broker.routeLocal(message);
        } finally {
          router.shareFilter = undefined;
          this.handover.inbound = undefined;
        }
        const handed = this.confirmation(); // a delivery handed on to the session's new node
        // Answered once the batch carrying its deliveries to persistent sessions here is stored
        // with none behind (QoS 2: and the memory of what this node took has it).
        if (msg.ack === undefined) return;
        if (msg.ack === CREDIT_ACK) return this.acks.routedOnCredit(from, cost);
        const kept = this.broker.journal?.carrier(msg.message)?.kept();
        this.acks.owe(from, msg.ack, bothKept(bothKept(taken, kept), handed));
        return;
      }
      case "ack": {
        this.acks.received(from, msg.ids, msg.ok, msg.counts);
        return;
      }
      case "kick":
        this.takeovers.kick(from, msg);
        return;
      case "released":
        this.takeovers.released(msg.clientId, msg.epoch, msg.ok);
        return;
      case "retained":
        this.retainedSync.received(msg.topic, msg.message, msg.version);
        return;
      case "handed":
        this.handover.handed(from, msg);
        return;
      case "adopted":
        this.handover.adopted(from, msg.clientId, msg.epoch);
        return;
      case "sync": // (after the route changes `from` made before it: route_sync.ts)
        this.bus.send(from, { kind: "synced", id: msg.id });
        return;
      case "synced":
        this.routeSync.synced(from, msg.id);
        return;
      case "share":
        this.shares.take(from, msg.share, msg.message, msg.passedOn === true);
        // A wait it left (a member handing on, Handover.handOn) has no publisher here: never
        // another message's.
        void this.confirmation()?.catch(() => {});
        return;
    }
  }
}

/** asked(): not an ack id (those are ≥ 1, credits.ts's 0): the publisher waits (ackId). */
const WAIT = -1;

/** A forwarded message serves no share group unless the sender says so. */
const NO_SHARES = () => false;
