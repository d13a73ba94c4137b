/**
 * A persistent session moving to another node loses nothing on the way. The
 * takeover (takeover.ts) moves its state through the store; this covers the
 * messages published meanwhile, which the old node would drop (it no longer
 * has the session) and the new one would not get (its routes are not out).
 *
 * The node that held the session (A) keeps it in its index after handing it
 * over: what matches it there goes on to the node that has it now (B, a
 * `handed` delivery), and whoever waits for A's answer (a publisher here, or
 * the node that forwarded the message) waits for B's too. B keeps what comes
 * before the session is loaded and delivers it then. Once loaded, B announces
 * the session's routes, waits until Redis has them and tells A (`adopted`);
 * only then does A withdraw its own, so every node sees B's route come before
 * A's go (Redis orders both) and no message for the session goes nowhere. A
 * node that sent to A before it saw A's routes go is still covered: A forgets
 * the session only once every other node answered a sync sent after them
 * (route_sync.ts; over Kafka, which gives no such order, after node-timeout).
 * B delivers a handed message through the session's own subscription: none
 * (it unsubscribed, started clean) takes nothing.
 *
 * A message may reach B twice during a move: straight from its publisher's
 * node, and handed on by A. QoS 2 is delivered once: each copy carries its
 * identity on the bus (`origin`: the node and ack id of its first forward),
 * and B drops a second copy for twice node-timeout. QoS 1 may arrive twice in
 * that window, as at least once allows (what A knows went to B anyway after
 * B loaded the session is not handed: the messages B itself sent A, and A's
 * own that A forwarded to B). QoS 0 is not handed: an offline session does
 * not get it either.
 */
import type { Broker } from "../broker/broker.ts";
import type { Message } from "../broker/message.ts";
import type { DeliveryIntercept, Session, Subscription } from "../broker/session.ts";
import { shareKey } from "../broker/router.ts";
import { topicMatches } from "../mqtt/topic.ts";
import type { RemoteAcks } from "./acks.ts";
import { FencedRescue, holdsStored } from "./fenced_rescue.ts";
import { bothKept } from "./qos2_resend.ts";
import type { BusMessage, ClusterBus, NodeId } from "./types.ts";

/** Deliveries B keeps for a session still loading; past it, the sender is told "not stored". */
const BUFFER_MAX = 10_000;
/** QoS 2 identities B remembers per arriving session. */
const SEEN_MAX = 100_000;
/** `inbound` while a handed message is delivered: never a node id, never undefined. */
const HANDED = "\0handed";

type Handed = Extract<BusMessage, { kind: "handed" }>;

/** A session this node handed over (A's side). */
interface Leaving {
  readonly session: Session;
  readonly to: NodeId;
  readonly epoch: number;
  adopted: boolean;
  /** leave() ran: the session is handed away (before it, only what reaches it goes on). */
  left?: boolean;
  timer: ReturnType<typeof setTimeout> | undefined;
  /** The session's intercept before, and the one handing on (stay() puts the first back). */
  readonly before: DeliveryIntercept | undefined;
  intercept?: DeliveryIntercept;
}

/** A session coming here (B's side). */
interface Arriving {
  /** Undefined while it loads. */
  session: Session | undefined;
  readonly buffer: { msg: Handed; done: (kept: Promise<void> | undefined) => void }[];
  /** Identities (`origin`) of the QoS 2 messages delivered to it since it loaded. */
  readonly seen: Set<string>;
  timer: ReturnType<typeof setTimeout> | undefined;
  /** Its intercept, once loaded. */
  intercept?: DeliveryIntercept;
}

/** What the handover needs of its node. */
export interface HandoverLink {
  readonly broker: Broker;
  readonly bus: ClusterBus;
  readonly acks: RemoteAcks;
  /** Ack timeout: a session not adopted within twice this is forgotten here. */
  readonly timeoutMs: number;
  /** The answer a delivery handed on now waits for joins the current message's wait... */
  hold(stored: Promise<void>): void;
  /** ...which this takes (ClusterLink.confirmation: taken after every message routed). */
  confirmation(): Promise<void> | undefined;
  /** Withdraw the session's routes; it stays in the index (LocalRoutes.withdraw). */
  withdraw(session: Session): void;
  /** Whether this node forwards `topic` to `node` (its route cache). */
  routesTo(node: NodeId, topic: string): boolean;
  /** Resolves once every other node applied this node's route changes (undefined: unknown). */
  routesSeen(): Promise<void> | undefined;
}

export class Handover {
  private readonly leaving = new Map<string, Leaving>();
  private readonly arriving = new Map<string, Arriving>();
  /** The arrival each session object came with (leave() reads its `seen`). */
  private readonly arrivals = new WeakMap<Session, Arriving>();
  /** The bus identity of QoS 2 messages being routed while a move is under way. */
  readonly origins = new WeakMap<Message, string>();
  /** The node whose message is being routed now (undefined: a client's here). */
  inbound: NodeId | undefined = undefined;

  /** QoS 2 deliveries of fenced copies that the store refused: handed on with the copy. */
  readonly rescue: FencedRescue;

  constructor(private readonly link: HandoverLink) {
    this.rescue = new FencedRescue({
      send: (to, clientId, l) => this.sendHanded(to, clientId, l.message, l.share, l.stored),
      timeoutMs: link.timeoutMs,
      log: (line) => link.broker.log(line),
    });
  }

  /** Sessions refused by the store (fenced), kept here until what is being written settled. */
  private readonly fencedCopies = new Map<Session, DeliveryIntercept>();

  /** A move is under way here: messages carry their identity, local ones are confirmed. */
  get active(): boolean {
    return this.leaving.size > 0 || this.arriving.size > 0 || this.fencedCopies.size > 0;
  }

  /**
   * `session`'s writes are refused (another node writes it now) and it stays in the index a
   * moment: a QoS 1/2 message for it is not stored anywhere through it, so its publisher (or
   * the node that sent it) is refused and resends; by then the routes lead to the new holder.
   */
  fence(session: Session): void {
    const refuse: DeliveryIntercept = (_message, qos) => {
      if (qos > 0) this.link.hold(NOT_HERE);
      return true;
    };
    this.fencedCopies.set(session, session.intercept = refuse);
  }

  /** Whether `session` is a fenced copy (its writes refused, it refuses what comes for it). */
  isFenced(session: Session): boolean {
    return this.fencedCopies.has(session);
  }

  /** The node `session` is handed (or being handed) to from here, if it is. */
  leavingTo(session: Session): NodeId | undefined {
    const entry = this.leaving.get(session.clientId);
    return entry?.session === session ? entry.to : undefined;
  }

  /** The fenced copy is gone (or kept after all: its client connected here again). */
  unfence(session: Session): void {
    const refuse = this.fencedCopies.get(session);
    this.fencedCopies.delete(session);
    if (refuse && session.intercept === refuse) session.intercept = undefined; // (not a hand-on)
  }

  // ---- A: the node the session leaves

  /**
   * Node `to` claimed `session` (its kick came): what matches it goes there from now on, while
   * the session's own changes are still written here until they settle (leave()). Taken here in
   * between, a message went into a batch written only after `to` had become the session's
   * writer: refused by the store's fence, and its publisher with it.
   */
  startLeave(session: Session, to: NodeId, epoch: number): void {
    const before = session.intercept;
    const entry: Leaving = { session, to, epoch, adopted: false, timer: undefined, before };
    this.leaving.set(session.clientId, entry);
    // Arrived here moments ago: a second copy of a QoS 2 message delivered here is still
    // dropped, not handed. Only looked up: what is handed on from now on was not delivered
    // here, and must not count as seen should the session come back here while that window is
    // open (arrive() gives the next arrival the same `seen`, and this object, not forgotten
    // yet, still takes messages published here meanwhile).
    const arrival = this.arrivals.get(session);
    const seen = arrival && before === arrival.intercept ? arrival.seen : undefined;
    session.intercept = entry.intercept = (message, qos, _retain, _ids, share) =>
      (seen !== undefined && this.isCopy(seen, message, share)) ||
      this.handOn(entry, message, qos, share);
  }

  /** `session` was handed to `to` (stored, its connection gone): hand on what matches it. */
  leave(session: Session, to: NodeId, epoch: number): void {
    // The other node writes it from now on, and runs its expiry and will.
    this.link.broker.lifecycle.handedAway(session);
    let entry = this.leaving.get(session.clientId);
    if (entry?.session !== session || entry.to !== to || entry.epoch !== epoch) {
      this.startLeave(session, to, epoch);
      entry = this.leaving.get(session.clientId)!;
    }
    const leaving = entry;
    leaving.left = true;
    this.rescue.handOn(session, to);
    leaving.timer = setTimeout(() => this.forget(leaving), 2 * this.link.timeoutMs);
    if (leaving.adopted) this.withdrawn(leaving); // `adopted` came first (a kick answered late)
  }

  /** Not handed over after all (gone, fenced, or its client is back here): nothing goes on. */
  stay(session: Session, epoch: number): void {
    const entry = this.leaving.get(session.clientId);
    if (entry?.session !== session || entry.epoch !== epoch) return;
    this.leaving.delete(session.clientId);
    clearTimeout(entry.timer);
    if (session.intercept !== entry.intercept) return;
    // The one before, if it still holds: the fence's, or its arrival's while that is open.
    const before = entry.before;
    const holds = before !== undefined && (this.fencedCopies.get(session) === before ||
      this.arriving.get(session.clientId)?.intercept === before);
    session.intercept = holds ? before : undefined;
  }

  /** The QoS 2 identity of `message` (per share group) is in `seen`. */
  private isCopy(seen: Set<string>, message: Message, share: string | undefined): boolean {
    const origin = this.origins.get(message);
    if (origin === undefined) return false;
    return seen.has(share === undefined ? origin : origin + "\0" + share);
  }

  /** `from` restored the session and announced its routes: withdraw ours, hand on a while. */
  adopted(from: NodeId, clientId: string, epoch: number): void {
    const entry = this.leaving.get(clientId);
    if (!entry || entry.to !== from || entry.epoch !== epoch || entry.adopted) return;
    entry.adopted = true;
    if (entry.left) this.withdrawn(entry);
  }

  /** Adopted and handed away: withdraw our routes, hand on a while longer. */
  private withdrawn(entry: Leaving): void {
    this.link.withdraw(entry.session);
    clearTimeout(entry.timer);
    // Once no node can still send here for it (route_sync.ts), else after node-timeout.
    entry.timer = setTimeout(() => this.forget(entry), this.link.timeoutMs);
    this.link.routesSeen()?.then(() => this.forget(entry));
  }

  private handOn(
    entry: Leaving,
    message: Message,
    qos: number,
    share: string | undefined,
  ): boolean {
    if (qos === 0) return true;
    if (entry.adopted && share === undefined) {
      // B has the session loaded: what B sent here, or what went there from here, it delivered.
      const from = this.inbound;
      if (from === entry.to) return true;
      if (from === undefined && this.link.routesTo(entry.to, message.topic)) return true;
    }
    this.link.hold(this.sendHanded(entry.to, entry.session.clientId, message, share));
    return true;
  }

  /**
   * `message` for `clientId`'s session, sent on to `to` (a `handed` delivery) with its QoS 2
   * identity, and its stored id when `to` may hold it already; resolves once `to` stored it.
   */
  private sendHanded(
    to: NodeId,
    clientId: string,
    message: Message,
    share: string | undefined,
    stored?: string,
  ): Promise<void> {
    const { id, stored: kept } = this.link.acks.expect("\0handed\0" + to, 1);
    const origin = this.origins.get(message);
    this.link.bus.send(to, { kind: "handed", clientId, message, share, origin, stored, ack: id });
    return kept;
  }

  private forget(entry: Leaving): void {
    const { session } = entry;
    if (this.leaving.get(session.clientId) === entry) this.leaving.delete(session.clientId);
    session.intercept = undefined;
    const broker = this.link.broker;
    if (broker.sessions.get(session.clientId) === session && !session.connection) {
      broker.lifecycle.forget(session);
    }
  }

  // ---- B: the node the session comes to

  /** This node is about to take `clientId` from another: keep what is handed until it loads. */
  arrive(clientId: string): void {
    const before = this.arriving.get(clientId);
    if (before && !before.session) return; // (claimed again while it loads)
    // A window of an earlier move here ends: its session object is not the one coming now.
    if (before) this.endWindow(clientId, before);
    // What it delivered then may come handed again (it went on in the store): still once.
    const seen = before?.seen ?? new Set<string>();
    this.arriving.set(clientId, { session: undefined, buffer: [], seen, timer: undefined });
  }

  /** The move of `clientId` here ended: its session (undefined: none came). */
  arrived(clientId: string, session: Session | undefined): void {
    const entry = this.arriving.get(clientId);
    if (!entry || entry.session) return;
    if (!session) {
      this.arriving.delete(clientId);
      for (const b of entry.buffer) b.done(NOT_HERE);
      return;
    }
    entry.session = session;
    const intercept: DeliveryIntercept = (message, _qos, _retain, _ids, share) => {
      const origin = this.origins.get(message);
      if (origin === undefined) return false;
      // Per share group: a session in a group and subscribed plainly gets both deliveries.
      const key = share === undefined ? origin : origin + "\0" + share;
      if (entry.seen.has(key)) return true; // QoS 2 once: a copy of it came first
      if (entry.seen.size < SEEN_MAX) entry.seen.add(key);
      return false;
    };
    session.intercept = entry.intercept = intercept;
    this.arrivals.set(session, entry);
    for (const b of entry.buffer.splice(0)) b.done(this.deliver(session, b.msg));
    // A hands on until node-timeout at most after it heard `adopted`, which it may hear late.
    entry.timer = setTimeout(() => this.endWindow(clientId, entry), 2 * this.link.timeoutMs);
  }

  private endWindow(clientId: string, entry: Arriving): void {
    clearTimeout(entry.timer);
    if (this.arriving.get(clientId) === entry) this.arriving.delete(clientId);
    const session = entry.session;
    if (session && session.intercept === entry.intercept) session.intercept = undefined;
  }

  /** A delivery handed on by `from`; answered once stored here. */
  handed(from: NodeId, msg: Handed): void {
    const acks = this.link.acks;
    const entry = this.arriving.get(msg.clientId);
    if (entry && !entry.session) {
      if (entry.buffer.length >= BUFFER_MAX) return acks.owe(from, msg.ack, NOT_HERE);
      let done!: (kept: Promise<void> | undefined) => void;
      const kept = new Promise<void>((resolve, reject) => {
        done = (k) => (k ? k.then(resolve, reject) : resolve());
      });
      entry.buffer.push({ msg, done });
      return acks.owe(from, msg.ack, kept);
    }
    // The session held here now (moving on, it hands the message on in turn); never an
    // entry's object from an earlier move, which may be gone.
    const session = this.link.broker.sessions.get(msg.clientId);
    acks.owe(from, msg.ack, session ? this.deliver(session, msg) : NOT_HERE);
  }

  /**
   * Deliver through the session's own subscription, as its router would; none (it unsubscribed,
   * or started clean) takes nothing. Answered once stored: with the batch that took it, else
   * once what is being written is (the first copy of a QoS 2 message dropped here as a second).
   */
  private deliver(session: Session, msg: Handed): Promise<void> | undefined {
    const broker = this.link.broker;
    // Decoded for this node alone, its payload a copy (codec.ts): owned, not cloned.
    const message: Message = msg.message;
    message.owned = true;
    const journal = broker.journal;
    // Held here already (loaded from the store): nothing to add (fenced_rescue.ts).
    if (
      msg.stored !== undefined && journal &&
      holdsStored(session, msg.stored, (m) => journal.idOf(m))
    ) {
      return journal.whenCaughtUp();
    }
    if (msg.origin !== undefined) this.origins.set(message, msg.origin);
    const sub = subscriptionFor(session, message, msg.share);
    if (sub) {
      this.inbound = HANDED; // (moving on already: nothing here was sent to that node)
      try {
        broker.router.deliverTo(
          sub,
          message,
          sub.retainAsPublished && message.retain,
          undefined,
          msg.share,
        );
      } finally {
        this.inbound = undefined;
      }
      broker.stats.sent++;
    }
    // Moving on already (to a third node): stored once that node answered.
    const onward = this.link.confirmation();
    return bothKept(journal?.carrier(message)?.kept() ?? journal?.whenCaughtUp(), onward);
  }

  close(): void {
    this.rescue.close();
    for (const e of this.leaving.values()) clearTimeout(e.timer);
    for (const e of this.arriving.values()) clearTimeout(e.timer);
  }
}

/** The answer for a delivery this node cannot take (the session is not here). */
const NOT_HERE = Promise.reject(new Error("the session is not on this node"));
NOT_HERE.catch(() => {});

/** The subscription of `session` a handed message goes through: share group `share`'s, else
 * the plain one matching its topic with the highest QoS. */
function subscriptionFor(
  session: Session,
  message: Message,
  share: string | undefined,
): Subscription | undefined {
  let best: Subscription | undefined;
  for (const sub of session.subscriptions.values()) {
    if (share !== undefined) {
      if (sub.group !== undefined && shareKey(sub) === share) return sub;
      continue;
    }
    if (sub.group !== undefined || !topicMatches(sub.matchFilter, message.topic)) continue;
    if (sub.noLocal && message.from === session.clientId) continue; // [MQTT-3.8.3-3]
    if (!best || sub.qos > best.qos) best = sub;
  }
  return best;
}
