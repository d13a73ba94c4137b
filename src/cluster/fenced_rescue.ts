/**
 * QoS 2 messages that a fenced copy took and the store refused to keep for it
 * (FencedWriteError): the session's new holder loaded it without them. Their
 * publisher is refused and sends each again, but its own part of that batch
 * (the packet id) was stored, so the resend is the duplicate it is for every
 * other subscriber and is routed nowhere [MQTT-4.3.3-2]: the fenced session's
 * copy would be lost. So the copy hands them on to the session's holder once
 * it knows who that is (Handover.leave), each with its bus identity (`origin`,
 * handover.ts), so a holder that also had the message straight from its
 * publisher's node drops the second copy. A resend of a publisher with such a
 * message on its way (here, or another node's resend of one it forwarded
 * here) is acknowledged only once the holder has it. QoS 1 needs none of
 * this: its resend is routed again.
 *
 * Only messages whose resend is such a duplicate: a local publisher's with a
 * persistent session, or another node's (its resend is known there,
 * qos2_resend.ts); a clean session's resend is routed again, and the broker's
 * own messages are not resent. Given up when the copy is dropped before a
 * holder was found (node-timeout), or the holder did not take it: logged as
 * lost for that session, and the resends are acknowledged.
 */
import type { Message } from "../broker/message.ts";
import type { Session } from "../broker/session.ts";
import { escapeForLog } from "../log/escape.ts";
import type { NodeId } from "./types.ts";

/** A delivery of the copy that its store refused. */
export interface Lost {
  readonly message: Message;
  /** Delivered through this share group's subscription. */
  readonly share: string | undefined;
  /**
   * The message's stored id: a refused rewrite of the whole session (after a store outage)
   * names messages stored long before, which the holder loaded; it skips those (holdsStored).
   */
  readonly stored: string;
}

interface Item extends Lost {
  /** Resolves once handed on and stored, or given up (never rejects). */
  readonly done: Promise<void>;
  readonly finish: () => void;
}

/** One fenced copy's refused deliveries. */
interface Pending {
  readonly clientId: string;
  /** Not sent yet: no holder known. */
  readonly unsent: Item[];
  to?: NodeId;
  readonly timer: ReturnType<typeof setTimeout>;
}

export interface RescueLink {
  /** Hand `lost` on to `to` for `clientId`'s session (Handover); resolves once stored there. */
  send(to: NodeId, clientId: string, lost: Lost): Promise<void>;
  readonly timeoutMs: number;
  log(line: string): void;
}

export class FencedRescue {
  private readonly pending = new Map<Session, Pending>();
  /** Per publisher (client id), its messages on their way. */
  private readonly byPublisher = new Map<string, Set<Item>>();

  constructor(private readonly link: RescueLink) {}

  /** `session` was fenced and the store kept none of `lost` for it. */
  add(session: Session, lost: readonly Lost[]): void {
    if (lost.length === 0) return;
    let p = this.pending.get(session);
    if (!p) {
      // (A backstop: the copy is dropped (drop) within node-timeout if no holder is found.)
      const timer = setTimeout(() => this.drop(session), 2 * this.link.timeoutMs);
      p = { clientId: session.clientId, unsent: [], timer };
      this.pending.set(session, p);
    }
    for (const l of lost) p.unsent.push(this.item(l));
    if (p.to !== undefined) this.send(p);
  }

  /** The fenced copy goes to `to` (Handover.leave): what it lost goes there. */
  handOn(session: Session, to: NodeId): void {
    const p = this.pending.get(session);
    if (!p) return;
    p.to = to;
    this.send(p);
  }

  /** What a QoS 2 resend of `publisher` waits for before its acknowledgement; undefined: none. */
  waitFor(publisher: string | undefined): Promise<void> | undefined {
    const items = publisher === undefined ? undefined : this.byPublisher.get(publisher);
    if (!items) return undefined;
    return Promise.all([...items].map((i) => i.done)).then(() => {});
  }

  /** The copy is dropped, or kept here after all: what it did not hand on is lost for it. */
  drop(session: Session): void {
    const p = this.pending.get(session);
    if (!p) return;
    this.pending.delete(session);
    clearTimeout(p.timer);
    if (p.unsent.length > 0) this.lost(p.clientId, "no other node holds it", p.unsent.length);
    for (const item of p.unsent.splice(0)) item.finish();
  }

  /** Stopping: nobody waits any more. */
  close(): void {
    for (const p of this.pending.values()) {
      clearTimeout(p.timer);
      for (const item of p.unsent.splice(0)) item.finish();
    }
    this.pending.clear();
  }

  private item(l: Lost): Item {
    let finish!: () => void;
    const done = new Promise<void>((resolve) => (finish = resolve));
    const item: Item = { ...l, done, finish };
    const publisher = l.message.from;
    if (publisher !== undefined) {
      let items = this.byPublisher.get(publisher);
      if (!items) this.byPublisher.set(publisher, items = new Set());
      items.add(item);
      done.then(() => {
        items.delete(item);
        if (items.size === 0 && this.byPublisher.get(publisher) === items) {
          this.byPublisher.delete(publisher);
        }
      });
    }
    return item;
  }

  private send(p: Pending): void {
    const to = p.to!;
    for (const item of p.unsent.splice(0)) {
      this.link.send(to, p.clientId, item).then(item.finish, (e) => {
        this.lost(p.clientId, `node ${to} did not take it: ${e instanceof Error ? e.message : e}`);
        item.finish();
      });
    }
  }

  private lost(clientId: string, why: string, n = 1): void {
    this.link.log(
      `cluster: ${n} QoS 2 message(s) the store refused for client ${escapeForLog(clientId)} ` +
        `could not be handed on (${why}); lost for that session`,
    );
  }
}

/** Whether `session` holds a delivery of the message stored as `id` (loaded from the store). */
export function holdsStored(session: Session, id: string, idOf: (m: Message) => string): boolean {
  for (const q of session.queue) if (idOf(q.message) === id) return true;
  for (const o of session.inflight.values()) if (idOf(o.message) === id) return true;
  return false;
}
