import type { Session } from "./session.ts";

/**
 * The two deadlines a disconnected session can have — when it expires, and
 * when its will is published (5.0 Will Delay) — as plain numbers (ms since
 * epoch) checked by the broker's one sweep, not as a timer per session: they
 * cost a map entry, survive as data (the session store keeps them), and a
 * delay longer than a runtime's timer range needs no special case.
 */
export class SessionDeadlines {
  private readonly expiry = new Map<Session, number>();
  private readonly wills = new Map<Session, number>();
  /** No deadline is before this: the sweep skips the maps until then. */
  private earliest = Infinity;

  expiresAt(session: Session): number | undefined {
    return this.expiry.get(session);
  }

  willAt(session: Session): number | undefined {
    return this.wills.get(session);
  }

  setExpiry(session: Session, at: number): void {
    this.expiry.set(session, at);
    if (at < this.earliest) this.earliest = at;
  }

  setWill(session: Session, at: number): void {
    this.wills.set(session, at);
    if (at < this.earliest) this.earliest = at;
  }

  /** True when there was one. */
  clearExpiry(session: Session): boolean {
    return this.expiry.delete(session);
  }

  /** True when there was one. */
  clearWill(session: Session): boolean {
    return this.wills.delete(session);
  }

  /** Every session whose will or expiry is due: wills first (a session's will precedes its end). */
  sweep(now: number, will: (s: Session) => void, expire: (s: Session) => void): void {
    if (now < this.earliest) return;
    let next = Infinity;
    const dueWills: Session[] = [];
    for (const [s, at] of this.wills) {
      if (at <= now) dueWills.push(s);
      else if (at < next) next = at;
    }
    const dueExpiry: Session[] = [];
    for (const [s, at] of this.expiry) {
      if (at <= now) dueExpiry.push(s);
      else if (at < next) next = at;
    }
    this.earliest = next;
    for (const s of dueWills) if (this.wills.delete(s)) will(s);
    for (const s of dueExpiry) if (this.expiry.delete(s)) expire(s);
  }
}
