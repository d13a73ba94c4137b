/**
 * One live connection per client id across the cluster, and the session
 * following its client to another node.
 *
 * A CONNECT on this node claims the client id in the bus (a new, larger
 * epoch). If another live node held it, that node gets a `kick`: it closes its
 * connection (5.0: DISCONNECT 0x8E), lets its session batch reach the store,
 * forgets the session without writing it again, and answers `released`. This
 * node then loads the session from the store and the CONNECT goes on, so the
 * client resumes it (`session present`). Only one node holds a session at a
 * time: the holder writes nothing after it answered. A holder that does not
 * answer within node-timeout (dead, or cut off from Redis) is not waited for.
 *
 * Messages published while the session moves are handed on from the holder to
 * this node (handover.ts).
 *
 * Fenced: once the holder answered (or did not in time), the new claim is
 * committed as the client's writer in Redis, and the store's script refuses
 * every later write of that session from another node; a node whose write was
 * refused (a holder that was cut off and missed the kick) drops the session
 * and closes its connection (`fenced`).
 */
import type { Broker } from "../broker/broker.ts";
import { restoreSessions } from "../broker/restore.ts";
import type { Message } from "../broker/message.ts";
import type { Outgoing, Queued, Session } from "../broker/session.ts";
import { escapeForLog } from "../log/escape.ts";
import type { Lost } from "./fenced_rescue.ts";
import type { Handover } from "./handover.ts";
import type { BusMessage, ClusterBus, NodeId } from "./types.ts";

type Kick = Extract<BusMessage, { kind: "kick" }>;

export class Takeover {
  /** Epoch of this node's claim per client id connected here. */
  readonly epochs = new Map<string, number>();
  /** Client ids whose connection here is being closed because another node took them. */
  readonly kicked = new Set<string>();
  private readonly done = new WeakSet<object>();
  private readonly waiting = new Map<string, (ok: boolean | undefined) => void>();
  /** Fenced copies waiting to learn who holds their client now (dropFenced). */
  private readonly awaitingOwner = new Map<Session, { clientId: string; deadline: number }>();
  private polling = false;

  constructor(
    private readonly broker: Broker,
    private readonly bus: ClusterBus,
    private readonly timeoutMs: number,
    /** A session loaded from the store is in the index: announce its routes. */
    private readonly restored: (session: Session) => void,
    private readonly handover: Handover,
  ) {}

  /** See ClusterLink.takeOver. */
  takeOver(
    conn: object,
    clientId: string,
    username: string | undefined,
  ): Promise<void> | undefined {
    if (this.done.has(conn)) return undefined;
    this.done.add(conn);
    return this.claim(clientId, username);
  }

  /** Another node claims `clientId`. */
  kick(from: NodeId, msg: Kick): void {
    const { clientId, epoch } = msg;
    const answer = (ok: boolean) => this.bus.send(from, { kind: "released", clientId, epoch, ok });
    const session = this.broker.sessions.get(clientId);
    if (!session) return answer(true);
    if ((this.epochs.get(clientId) ?? 0) > epoch) return; // our own claim is newer
    const id = escapeForLog(clientId);
    // As on one node: nobody takes over another user's session.
    if (session.username !== msg.username && !this.broker.options.allowCrossUserSession) {
      this.broker.log(`cluster: client ${id} of another user connected on node ${from}; kept`);
      // Its claim made that node the id's owner: take it back (restart and heir follow it).
      this.bus.claimFrom(clientId, from).then((e) => {
        if (e > 0) this.epochs.set(clientId, e);
      }).catch(() => {}).finally(() => answer(false));
      return;
    }
    this.epochs.delete(clientId);
    const conn = session.connection;
    if (conn) {
      this.kicked.add(clientId);
      this.broker.log(`cluster: client ${id} connected on node ${from}; closing here`);
      conn.close(0x8e); // Session taken over
    }
    this.handOver(clientId, session, { to: from, epoch }).then(
      () => answer(true),
      () => answer(true),
    );
  }

  /**
   * `node` died and this node is its heir: take over the sessions it held, as their clients
   * would. Returns the client ids it took (their sessions are here now).
   */
  async inherit(node: NodeId): Promise<string[]> {
    const taken: string[] = [];
    for (const clientId of await this.bus.ownedBy(node)) {
      if ((await this.bus.claimFrom(clientId, node)) === 0) continue; // its client was faster
      if (this.broker.sessions.get(clientId)?.connection) continue;
      // As for a claim: a QoS 2 message may reach it twice in the first moments, straight and
      // handed on by the dead node's fenced copy, should that node still run (fenced_rescue.ts).
      this.handover.arrive(clientId);
      let session: Session | undefined;
      try {
        await this.adopt(clientId);
        session = this.broker.sessions.get(clientId);
      } finally {
        this.handover.arrived(clientId, session);
      }
      taken.push(clientId);
    }
    return taken;
  }

  /**
   * The store refused writes of these clients: another node is their writer now. `lost`: per
   * client, the messages those writes delivered to it (kept nowhere now).
   */
  fenced(clientIds: readonly string[], lost?: ReadonlyMap<string, ReadonlySet<string>>): void {
    for (const clientId of clientIds) {
      const session = this.broker.sessions.get(clientId);
      this.epochs.delete(clientId);
      if (!session) continue;
      const ids = lost?.get(clientId);
      if (ids && ids.size > 0) this.handover.rescue.add(session, this.lostQos2(session, ids));
      // Nothing more of it is written from here, and its will and expiry are the writer's.
      this.broker.lifecycle.handedAway(session);
      this.handover.fence(session);
      const conn = session.connection;
      this.broker.log(
        `cluster: client ${escapeForLog(clientId)} is written by another node now ` +
          `(a write from here was refused); dropping its session here`,
      );
      if (conn) {
        this.kicked.add(clientId);
        conn.close(0x8e); // Session taken over
      }
      void this.handOver(clientId, session);
    }
  }

  /**
   * The deliveries of QoS 2 messages among `ids` that `session` still holds (a released one, or
   * one its client completed, it has) and whose resend will be taken as a duplicate: what the
   * fenced copy must hand on (fenced_rescue.ts).
   */
  private lostQos2(session: Session, ids: ReadonlySet<string>): Lost[] {
    const journal = this.broker.journal;
    if (!journal) return [];
    const out: Lost[] = [];
    const take = (d: Queued | Outgoing) => {
      const message = d.message;
      if (message.qos !== 2 || !this.resentAsDuplicate(message)) return;
      const stored = journal.idOf(message);
      if (ids.has(stored)) out.push({ message, share: d.share, stored });
    };
    for (const q of session.queue) take(q);
    for (const o of session.inflight.values()) if (!o.released) take(o);
    return out;
  }

  /**
   * Whether a resend of QoS 2 `message` is routed nowhere: another node's (it knows the resend,
   * qos2_resend.ts), or a local publisher's with a persistent session (its packet id is stored).
   * A clean session's resend is a new message, and the broker's own are not resent.
   */
  private resentAsDuplicate(message: Message): boolean {
    const origin = this.handover.origins.get(message);
    if (origin !== undefined && !origin.startsWith(this.bus.nodeId + ":")) return true;
    const publisher = message.from === undefined
      ? undefined
      : this.broker.sessions.get(message.from);
    return publisher !== undefined && this.broker.journal?.tracks(publisher) === true;
  }

  /** The answer to one of our kicks. */
  released(clientId: string, epoch: number, ok: boolean): void {
    this.waiting.get(clientId + "\0" + epoch)?.(ok);
  }

  /** Forget a session here without writing the store (another node holds it now). */
  evict(clientId: string): void {
    const session = this.broker.sessions.get(clientId);
    if (!session || session.connection) return; // reconnected here meanwhile
    this.broker.lifecycle.forget(session);
  }

  private async claim(clientId: string, username: string | undefined): Promise<void> {
    const { epoch, previous } = await this.bus.claim(clientId);
    this.epochs.set(clientId, epoch);
    if (previous === undefined) return;
    const live = this.bus.nodes().some((n) => n.id === previous);
    if (!live) return this.take(clientId, epoch);
    this.handover.arrive(clientId);
    let session: Session | undefined;
    try {
      const ok = await this.ask(previous, { kind: "kick", clientId, epoch, username });
      if (ok === false) {
        if (this.epochs.get(clientId) === epoch) this.epochs.delete(clientId);
        throw Object.assign(new Error(`its session on node ${previous} belongs to another user`), {
          reasonCode: 0x87,
        });
      }
      await this.take(clientId, epoch);
      session = this.broker.sessions.get(clientId);
    } finally {
      this.handover.arrived(clientId, session);
    }
    // Our routes first, then the previous holder withdraws its own (handover.ts).
    const adopted = () => this.bus.send(previous, { kind: "adopted", clientId, epoch });
    void (this.bus.routesApplied?.() ?? Promise.resolve()).then(adopted, adopted);
  }

  /** Handed over, or no answer: from now on the previous holder's writes are refused. */
  private async take(clientId: string, epoch: number): Promise<void> {
    if ((await this.bus.commit?.(clientId, epoch)) === false) {
      // A newer claim overtook ours (an heir's, say, while this node stalled): it holds the
      // session; serving it here too would deliver what that node delivers.
      if (this.epochs.get(clientId) === epoch) this.epochs.delete(clientId);
      throw Object.assign(new Error("a newer claim of another node holds it"), {
        reasonCode: 0x88,
      });
    }
    await this.adopt(clientId);
  }

  private ask(node: NodeId, kick: Kick): Promise<boolean | undefined> {
    return new Promise((resolve) => {
      const key = kick.clientId + "\0" + kick.epoch;
      const timer = setTimeout(() => {
        this.waiting.delete(key);
        resolve(undefined); // no answer: that node is gone or cut off
      }, this.timeoutMs);
      this.waiting.set(key, (ok) => {
        clearTimeout(timer);
        this.waiting.delete(key);
        resolve(ok);
      });
      this.bus.send(node, kick);
    });
  }

  /** Load the session the previous holder stored, replacing a stale copy here. */
  private async adopt(clientId: string): Promise<void> {
    const store = this.broker.store.sessions;
    if (!store?.loadSessions || !this.broker.journal) return;
    const state = await store.loadSessions([clientId]);
    const here = this.broker.sessions.get(clientId);
    if (here?.connection) return; // connected here: the CONNECT takes it over as on one node
    if (here) this.evict(clientId);
    if (state.sessions.length === 0) return;
    restoreSessions(this.broker, state);
    const session = this.broker.sessions.get(clientId);
    if (session) this.restored(session);
  }

  /**
   * After the kick: wait for the connection to end and its changes to be stored, then forget,
   * or (`to`: the node that takes it) hand on what matches it until that node has it.
   */
  private async handOver(
    clientId: string,
    session: Session,
    to?: { to: NodeId; epoch: number },
  ): Promise<void> {
    // A session that can go (stored here, or a fenced copy; not a clean one, which ends); or a
    // fenced copy already handed on to its owner (dropFenced), whose kick comes after: evicted
    // now, its routes went before the new holder's came, and what was published here meanwhile
    // matched nothing (a QoS 1 message acknowledged and lost, cluster_fenced_routes_test).
    const leavingTo = this.handover.leavingTo(session);
    const movable = session.journal !== undefined || this.handover.isFenced(session) ||
      leavingTo !== undefined;
    // Handed away already (nothing written here) to the owner in Redis: a kick from another node
    // is a late one of an older claim; the hand-on stays with the owner.
    const handedAway = session.journal === undefined && !this.handover.isFenced(session);
    if (to && handedAway && leavingTo !== undefined && leavingTo !== to.to) return;
    if (to && movable) this.handover.startLeave(session, to.to, to.epoch);
    const deadline = Date.now() + this.timeoutMs / 2;
    while (session.connection && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 10));
    }
    await this.broker.journal?.settled();
    const here = this.broker.sessions.get(clientId) === session && !session.connection;
    if (to && here && movable) {
      // A fenced copy too: `to` loads what the store has, and what reaches the copy goes there.
      this.handover.unfence(session);
      return this.handover.leave(session, to.to, to.epoch);
    }
    if (to) this.handover.stay(session, to.epoch);
    if (this.handover.isFenced(session) && !session.connection) {
      this.dropFenced(clientId, session); // (a kick is answered meanwhile)
    } else {
      this.handover.unfence(session);
      this.handover.rescue.drop(session);
      this.evict(clientId);
    }
  }

  /**
   * A fenced copy that no kick said who took: once the client's owner is another node, what
   * reaches the copy goes there, as after a hand-over, until that node has surely loaded the
   * session (Handover.leave: no `adopted` comes, so twice node-timeout). Until then, at most
   * node-timeout, the copy refuses it (Handover.fence). Forgotten at once, its routes went before
   * the new holder's came, and a message published here meanwhile matched nothing: acknowledged
   * and lost.
   */
  private dropFenced(clientId: string, session: Session): void {
    this.awaitingOwner.set(session, { clientId, deadline: Date.now() + this.timeoutMs });
    if (!this.polling) void this.pollOwners();
  }

  /**
   * The owners of every fenced copy waiting for one, in one request every 50 ms: a node declared
   * dead can find thousands of its sessions fenced at once.
   */
  private async pollOwners(): Promise<void> {
    this.polling = true;
    try {
      while (this.awaitingOwner.size > 0) {
        const waiting = [...this.awaitingOwner];
        const ids = [...new Set(waiting.map(([, w]) => w.clientId))];
        const owners = await this.bus.owners(ids).catch(() => undefined);
        const now = Date.now();
        for (const [session, { clientId, deadline }] of waiting) {
          try {
            this.ownerFound(session, clientId, deadline, owners?.get(clientId), now);
          } catch (e) {
            // One copy's failure must not leave the others waiting for ever, nor itself in the
            // index taking messages nothing stores.
            this.awaitingOwner.delete(session);
            this.broker.log(`cluster: handing on a fenced copy failed (${e}); dropping it`);
            if (this.broker.sessions.get(clientId) === session && !session.connection) {
              this.evict(clientId);
            }
          }
        }
        if (this.awaitingOwner.size > 0) await new Promise((r) => setTimeout(r, 50));
      }
    } finally {
      this.polling = false;
    }
  }

  /** One waiting copy, now that its client's owner is known (or not). */
  private ownerFound(
    session: Session,
    clientId: string,
    deadline: number,
    owner: NodeId | undefined,
    now: number,
  ): void {
    const fenced = this.broker.sessions.get(clientId) === session && !session.connection &&
      this.handover.isFenced(session);
    if (fenced && owner !== undefined && owner !== this.bus.nodeId) {
      this.awaitingOwner.delete(session);
      this.handover.unfence(session);
      this.handover.leave(session, owner, 0);
    } else if (!fenced || now >= deadline) {
      this.awaitingOwner.delete(session);
      if (!this.handover.isFenced(session)) return; // handed on meanwhile (a kick), or kept
      this.handover.unfence(session);
      this.handover.rescue.drop(session);
      if (this.broker.sessions.get(clientId) === session) this.evict(clientId);
    }
  }
}
