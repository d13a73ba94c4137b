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
  held: Promise<void> | undefined;
  /** The run of consecutive entries waiting on the same `held`, settled by one reaction. */
  run: Held[];
}

/** Per connection, its held acknowledgements in the order the PUBLISH packets came in. */
const chains = new WeakMap<Connection, Held[]>();

/** True when earlier acknowledgements of this connection are still held: a new one must queue. */
export function hasHeldAcks(conn: Connection): boolean {
  return chains.has(conn);
}

/**
 * Run `ack` after `held` (if any) and after every earlier held acknowledgement
 * of `conn`; `refuse` instead when `held` rejects.
 *
 * A queue, not a promise chain: when one answer settles a run of them (another
 * node's stored-ack for a whole batch, say), every ready acknowledgement goes
 * out in one synchronous pass, so the connection writes them in one go. A chain
 * released them one microtask apart, each in its own socket write (cross-node
 * S4: about one write per PUBACK). Consecutive messages held by the same
 * promise (a cluster turn's shared remote-ack wait, cluster/acks.ts) join one
 * run with one reaction, not a reaction each.
 */
export function ackWhenHeld(
  conn: Connection,
  held: Promise<void> | undefined,
  ack: () => void,
  refuse: (reason: unknown) => void,
): void {
  let queue = chains.get(conn);
  if (!queue) chains.set(conn, queue = []);
  const last = queue.length > 0 ? queue[queue.length - 1] : undefined;
  if (held && last && last.held === held && !last.done) {
    const h: Held = { done: false, failed: false, ack, refuse, held, run: last.run };
    last.run.push(h);
    queue.push(h);
    return;
  }
  const run: Held[] = [];
  const h: Held = { done: false, failed: false, ack, refuse, held, run };
  run.push(h);
  queue.push(h);
  const q = queue;
  const settle = (failed: boolean, reason?: unknown) => {
    for (const r of run) {
      r.done = true;
      r.failed = failed;
      r.reason = reason;
    }
    drain(conn, q);
  };
  if (held) held.then(() => settle(false), (e) => settle(true, e));
  else queueMicrotask(() => settle(false));
}

/** Send the settled acknowledgements at the head of `q`, in order. */
function drain(conn: Connection, q: Held[]): void {
  let n = 0;
  while (n < q.length && q[n].done) n++;
  if (n === 0) return;
  const ready = q.splice(0, n);
  if (q.length === 0 && chains.get(conn) === q) chains.delete(conn);
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
