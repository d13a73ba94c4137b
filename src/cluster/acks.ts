/**
 * Acknowledged means kept, across nodes: a QoS 1/2 message forwarded to other
 * nodes is acknowledged to its publisher only once every node that got it has
 * stored it for its persistent sessions (each answers with an `ack` after its
 * session batch is written). A node that does not answer within the timeout,
 * or cannot store, fails the wait: the publisher gets no PUBACK/PUBREC and
 * sends again.
 *
 * One wait per event-loop turn and set of destination nodes, not one per
 * message: every QoS 1/2 message a turn forwards to the same nodes carries the
 * same ack id, and each node answers that id once with how many of its records
 * it stored (`counts`). The wait is sealed at the end of the turn and settles
 * when the answers cover every record sent. A promise and a map entry per
 * forwarded message cost about a quarter of the sending node's CPU in a
 * cross-node S4 profile; the publishers' PUBACKs of a turn now release together.
 */
import { setImmediate } from "node:timers";
import { CREDIT_ACK, CREDIT_BYTES, Credits } from "./credits.ts";
import type { ClusterBus, NodeId } from "./types.ts";

/** Records owed at the end of a turn from which the answers wait for the next millisecond's. */
export const BUSY_RECORDS = 64;
/** Credit (credits.ts) handed back at the end of the turn that received this much on credit... */
export const CREDIT_RETURN = CREDIT_BYTES / 4;
/** ...or this long after the first of them, whichever comes first (a node at a low rate). */
export const CREDIT_RETURN_MS = 50;

interface Waiting {
  /** Records sent under this id not answered yet (a message to two nodes is two). */
  left: number;
  /** No more records join this id (its turn ended). */
  sealed: boolean;
  resolve: () => void;
  reject: (e: Error) => void;
  /** ms since epoch after which the wait fails. */
  deadline: number;
}

/** An answer this node owes: `count` records of ack `id` from `node`, stored (or not) together. */
interface Owed {
  node: NodeId;
  id: number;
  count: number;
  stored: Promise<void> | undefined;
}

export class RemoteAcks {
  /**
   * Random start: an answer meant for an earlier run of this node (a bus that keeps messages
   * for a restarting node delivers it late) must not match one of this run's ids.
   */
  private next = 1 + Math.floor(Math.random() * 2 ** 48);
  private readonly waiting = new Map<number, Waiting>();
  /** This turn's open waits, by destination set. */
  private readonly open = new Map<string, { id: number; stored: Promise<void> }>();
  private sealing = false;
  /** Answers this node owes, per origin node, sent together once per turn. */
  private readonly owed = new Map<NodeId, { ok: Owed[]; failed: Owed[] }>();
  /** The last answer owed, while more records may still join it. */
  private last: Owed | undefined;
  private flushing = false;
  /**
   * One timer for all waits, not one per message (a timer per forwarded QoS 1 message cost
   * ~10% of the sending node's CPU in a cross-node S4 profile). Every wait has the same
   * timeout, so `waiting`'s insertion order is deadline order.
   */
  private sweeper: ReturnType<typeof setTimeout> | undefined;
  /** What other nodes may send this one without waiting for an answer. */
  readonly credits: Credits;
  /** Credit of messages received on credit, per origin node, not handed back yet. */
  private readonly lent = new Map<NodeId, number>();
  private lentTimer: ReturnType<typeof setTimeout> | undefined;
  private closed = false;

  constructor(private readonly bus: ClusterBus, private readonly timeoutMs: number) {
    this.credits = new Credits(timeoutMs);
  }

  /**
   * The ack id for a message sent to the nodes named by `key` (`nodes` of them) in this turn,
   * and the promise that they stored it and every other message of the turn under that id.
   */
  expect(key: string, nodes: number): { id: number; stored: Promise<void> } {
    const open = this.open.get(key);
    const w = open && this.waiting.get(open.id);
    if (w) { // (gone if it failed already: a new wait)
      w.left += nodes;
      return open!;
    }
    const id = this.next++;
    const deadline = Date.now() + this.timeoutMs;
    const stored = new Promise<void>((resolve, reject) => {
      this.waiting.set(id, { left: nodes, sealed: false, resolve, reject, deadline });
    });
    stored.catch(() => {}); // whoever waits handles it; nobody waiting is no crash
    const entry = { id, stored };
    this.open.set(key, entry);
    this.sweeper ??= setTimeout(() => this.sweep(), this.timeoutMs);
    if (!this.sealing) {
      this.sealing = true;
      // The frames of this turn go at its end (batch.ts) as well: no answer can come earlier.
      setImmediate(() => this.seal());
    }
    return entry;
  }

  /** Answers from node `from`: `counts[i]` records of `ids[i]` (1 when not given). */
  received(from: NodeId, ids: readonly number[], ok: boolean, counts?: readonly number[]): void {
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i];
      if (id === CREDIT_ACK) {
        this.credits.returned(from, counts?.[i] ?? 1);
        continue;
      }
      const w = this.waiting.get(id);
      if (!w) continue;
      if (!ok) {
        this.waiting.delete(id);
        w.reject(new Error("another node could not store the message"));
      } else if ((w.left -= counts?.[i] ?? 1) <= 0 && w.sealed) {
        this.waiting.delete(id);
        w.resolve();
      }
    }
  }

  /** Answer `node` for a record of ack `id` once `stored` settles (undefined: nothing to wait for). */
  owe(node: NodeId, id: number, stored: Promise<void> | undefined): void {
    const last = this.last;
    if (last && last.id === id && last.node === node && last.stored === stored) {
      last.count++; // answered together with the records before it
      return;
    }
    const o: Owed = { node, id, count: 1, stored };
    this.last = o;
    if (!stored) return this.add(o, true);
    const done = (ok: boolean) => {
      if (this.last === o) this.last = undefined;
      this.add(o, ok);
    };
    stored.then(() => done(true), () => done(false));
  }

  /** A message from `node` on credit, of `cost`, was routed: handed back in bulk (CREDIT_RETURN). */
  routedOnCredit(node: NodeId, cost: number): void {
    if (this.closed) return; // (a frame read while the node leaves)
    const n = (this.lent.get(node) ?? 0) + cost;
    this.lent.set(node, n);
    if (n >= CREDIT_RETURN) this.schedule();
    else this.lentTimer ??= setTimeout(() => this.flush(), CREDIT_RETURN_MS);
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.sweeper);
    clearTimeout(this.lentTimer);
    this.open.clear();
    for (const [id, w] of this.waiting) {
      this.waiting.delete(id);
      w.reject(new Error("cluster stopped"));
    }
  }

  /** The turn ended: its waits take no more records, and settle once all are answered. */
  private seal(): void {
    this.sealing = false;
    for (const { id } of this.open.values()) {
      const w = this.waiting.get(id);
      if (!w) continue; // failed already
      w.sealed = true;
      if (w.left <= 0) {
        this.waiting.delete(id);
        w.resolve();
      }
    }
    this.open.clear();
  }

  /** Fail the waits past their deadline; come back at the next one's. */
  private sweep(): void {
    this.sweeper = undefined;
    const now = Date.now();
    for (const [id, w] of this.waiting) {
      if (w.deadline > now) {
        this.sweeper = setTimeout(() => this.sweep(), w.deadline - now);
        return;
      }
      this.waiting.delete(id);
      w.reject(new Error("another node did not confirm it stored the message"));
    }
  }

  private add(o: Owed, ok: boolean): void {
    const per = this.owedTo(o.node);
    (ok ? per.ok : per.failed).push(o);
    this.schedule();
  }

  private owedTo(node: NodeId): { ok: Owed[]; failed: Owed[] } {
    let per = this.owed.get(node);
    if (!per) this.owed.set(node, per = { ok: [], failed: [] });
    return per;
  }

  private schedule(): void {
    if (this.flushing) return;
    this.flushing = true;
    setImmediate(() => this.turnEnded());
  }

  /**
   * Few records owed (a node at a low rate): answered now, at the end of the turn that read
   * them. A timer (1 ms on Bun) woke the node once more for them: at 200 msg/s per pair across
   * nodes it woke ~3x as often (bench/notes/cluster_hops.md). Many (a busy node, whose next
   * input comes sooner anyway): with the next millisecond's, in one frame, as before (answering
   * every turn ran flat-out cross-node S4 at 0.82-0.96 of the messages per CPU-second).
   */
  private turnEnded(): void {
    let n = 0;
    for (const per of this.owed.values()) {
      for (const o of per.ok) n += o.count;
      n += per.failed.length;
    }
    if (n < BUSY_RECORDS) this.flush();
    else setTimeout(() => this.flush(), 0);
  }

  private flush(): void {
    this.flushing = false;
    // Credit rides along with every answer, and goes alone when CREDIT_RETURN or the timer says.
    clearTimeout(this.lentTimer);
    this.lentTimer = undefined;
    for (const [node, count] of this.lent) {
      this.owedTo(node).ok.push({ node, id: CREDIT_ACK, count, stored: undefined });
    }
    this.lent.clear();
    // Records that arrive from now on are answered in a later flush.
    if (this.last && !this.last.stored) this.last = undefined;
    for (const [node, per] of this.owed) {
      if (per.ok.length > 0) this.bus.send(node, answer(per.ok, true));
      if (per.failed.length > 0) this.bus.send(node, answer(per.failed, false));
    }
    this.owed.clear();
  }
}

function answer(owed: Owed[], ok: boolean) {
  const ids = owed.map((o) => o.id);
  if (owed.every((o) => o.count === 1)) return { kind: "ack" as const, ids, ok };
  return { kind: "ack" as const, ids, ok, counts: owed.map((o) => o.count) };
}
