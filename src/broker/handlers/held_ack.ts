/**
 * PUBACK/PUBREC held by a persistPublish hook (BrokerHooks): sent once the
 * hook's promise settles, in the order the PUBLISH packets came in on that
 * connection. Only connections that ever had a held acknowledgement have a
 * chain, so nothing here runs for a broker without such a hook.
 */
import type { Connection } from "../connection.ts";
import type { Session } from "../session.ts";

interface Chain {
  tail: Promise<void>;
  pending: number;
}

const chains = new WeakMap<Connection, Chain>();

/** True when earlier acknowledgements of this connection are still held: a new one must queue. */
export function hasHeldAcks(conn: Connection): boolean {
  return chains.has(conn);
}

/**
 * Run `ack` after `held` (if any) and after every earlier held acknowledgement
 * of `conn`; `refuse` instead when `held` rejects.
 */
export function ackWhenHeld(
  conn: Connection,
  held: Promise<void> | undefined,
  ack: () => void,
  refuse: (reason: unknown) => void,
): void {
  let chain = chains.get(conn);
  if (!chain) chains.set(conn, chain = { tail: Promise.resolve(), pending: 0 });
  chain.pending++;
  const mine = held ?? Promise.resolve();
  const c = chain;
  c.tail = c.tail.then(() => mine).then(ack, refuse).finally(() => {
    if (--c.pending === 0 && chains.get(conn) === c) chains.delete(conn);
  });
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
