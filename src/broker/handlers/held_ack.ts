/**
 * PUBACK/PUBREC held by a persistPublish hook (BrokerHooks): sent once the
 * hook's promise settles, in the order the PUBLISH packets came in on that
 * connection. Only connections that ever had a held acknowledgement have a
 * chain, so nothing here runs for a broker without such a hook.
 */
import type { Connection } from "../connection.ts";
import type { Session } from "../session.ts";

/** One held acknowledgement: sent (or refused) once it and every earlier one has settled. */
interface Held {
  done: boolean;
  failed: boolean;
  reason?: unknown;
  ack: () => void;
  refuse: (reason: unknown) => void;
  /** Its connection's queue. */
  queue: Held[];
}

/**
 * Per connection, its held acknowledgements in the order the PUBLISH packets came in. An
 * emptied queue stays: a set and a delete per message (a publisher at 200 msg/s has one
 * held at a time): with the rest of ackWhenHeld ~4% of the samples of a node forwarding QoS 1
 * to another (S4-rate200).
 */
const chains = new WeakMap<Connection, Held[]>();

/**
 * The held acknowledgements waiting on each promise, of every connection: one reaction per
 * promise. A cluster turn's remote-ack wait (cluster/acks.ts) holds the PUBACKs of all the
 * publishers read in that turn; a reaction each (one per connection) cost a promise, two
 * closures and a microtask per message.
 */
const waiting = new WeakMap<Promise<void>, Held[]>();

/** True when earlier acknowledgements of this connection are still held: a new one must queue. */
export function hasHeldAcks(conn: Connection): boolean {
  const q = chains.get(conn);
  return q !== undefined && q.length > 0;
}

/**
 * Run `ack` after `held` (if any) and after every earlier held acknowledgement
 * of `conn`; `refuse` instead when `held` rejects.
 *
 * A queue, not a promise chain: when one answer settles a run of them (another
 * node's stored-ack for a whole batch, say), every ready acknowledgement goes
 * out in one synchronous pass, so the connection writes them in one go. A chain
 * released them one microtask apart, each in its own socket write (cross-node
 * S4: about one write per PUBACK).
 */
export function ackWhenHeld(
  conn: Connection,
  held: Promise<void> | undefined,
  ack: () => void,
  refuse: (reason: unknown) => void,
): void {
  let queue = chains.get(conn);
  if (!queue) chains.set(conn, queue = []);
  const h: Held = { done: false, failed: false, ack, refuse, queue };
  queue.push(h);
  if (!held) return queueMicrotask(() => settle([h], false));
  const group = waiting.get(held);
  if (group) return void group.push(h);
  const all = [h];
  waiting.set(held, all);
  // Settled: one held by the same promise from now on gets a reaction of its own.
  const settled = (failed: boolean, reason?: unknown) => {
    waiting.delete(held);
    settle(all, failed, reason);
  };
  held.then(() => settled(false), (e) => settled(true, e));
}

/** `group`'s promise settled: mark them, then send what is ready on each of their connections. */
function settle(group: Held[], failed: boolean, reason?: unknown): void {
  for (const h of group) {
    h.done = true;
    h.failed = failed;
    h.reason = reason;
  }
  let last: Held[] | undefined;
  for (const h of group) {
    if (h.queue === last) continue; // one pass drains every ready one of that connection
    last = h.queue;
    drain(h.queue);
  }
}

/** Send the settled acknowledgements at the head of `q`, in order. */
function drain(q: Held[]): void {
  let n = 0;
  while (n < q.length && q[n].done) n++;
  if (n === 0) return;
  const ready = q.splice(0, n);
  for (const h of ready) {
    try {
      if (h.failed) h.refuse(h.reason);
      else h.ack();
    } catch (e) {
      queueMicrotask(() => {
        throw e; // as an unhandled error, without holding back the ones after it
      });
    }
  }
}

/** QoS 2 messages whose PUBREC is still held, per session: a resend (even after a reconnect) waits too. */
const heldIds = new WeakMap<Session, Map<number, Promise<void>>>();

export function holdQos2(session: Session, packetId: number, held: Promise<void>): void {
  let ids = heldIds.get(session);
  if (!ids) heldIds.set(session, ids = new Map());
  ids.set(packetId, held);
  const done = () => {
    if (ids.get(packetId) !== held) return;
    ids.delete(packetId);
    if (ids.size === 0) heldIds.delete(session);
  };
  held.then(done, done);
}

export function heldQos2(session: Session, packetId: number): Promise<void> | undefined {
  return heldIds.get(session)?.get(packetId);
}
