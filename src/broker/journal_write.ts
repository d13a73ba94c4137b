/**
 * One batch of the session journal (src/broker/journal.ts) from the moment it
 * opens until its write settles, and the acknowledgements waiting for it.
 * Acknowledgements run in the order they were asked for, and batches settle
 * in the order they were opened (one write at a time), so each connection's
 * acknowledgements keep its order [MQTT-4.6.0-2] with no promise per message.
 */
import type { Connection } from "./connection.ts";

/** `send` undefined: the connection's session is not stored, close it instead. */
interface Ack {
  readonly conn: Connection;
  readonly send: (() => void) | undefined;
}

export class PendingWrite {
  /** Resolves when the batch is stored, rejects when it failed. */
  readonly promise: Promise<void>;
  private resolve!: () => void;
  private reject!: (e: unknown) => void;
  private acks: Ack[] = [];
  /** Settles (never rejects) once the acknowledgements waiting here ran. */
  private done: Promise<void> | undefined;
  /** Why the write failed, once it did. */
  private failure: string | undefined;

  /** `dirty`: the journal's sessions left behind by a failed batch, not rewritten yet. */
  constructor(
    private readonly log: (line: string) => void,
    private readonly dirty: ReadonlySet<string>,
  ) {
    this.promise = new Promise<void>((res, rej) => ((this.resolve = res), (this.reject = rej)));
    this.promise.catch(() => {}); // failures are handled per acknowledgement
  }

  /** Run `send` once stored (or close `conn` if it failed); the promise settles after. */
  wait(conn: Connection, send: (() => void) | undefined): Promise<void> {
    this.acks.push({ conn, send });
    return this.done ??= this.promise.then(noop, noop);
  }

  stored(): void {
    // A session an earlier batch failed to store while this one was written (its rewrite,
    // say) is not acknowledged either, as when it was behind at the ask (journal.acknowledge).
    const behind = this.dirty.size > 0 ? this.dirty : undefined;
    try {
      for (const a of this.take()) {
        if (a.conn.closing) continue;
        if (a.send && !(behind && isBehind(a.conn, behind))) this.run(a.send);
        else this.run(() => refuse(a.conn, "session not stored", this.log));
      }
    } finally {
      this.resolve(); // whatever an acknowledgement threw, the waiters on this batch go on
    }
  }

  failed(e: unknown): void {
    const why = this.failure = e instanceof Error ? e.message : String(e);
    try {
      for (const a of this.take()) {
        if (!a.conn.closing) this.run(() => refuse(a.conn, why, this.log));
      }
    } finally {
      this.reject(e);
    }
  }

  /** One acknowledgement's throw (a closed socket, a hook's log) must not skip the others'. */
  private run(f: () => void): void {
    try {
      f();
    } catch (e) {
      this.log(`session journal: an acknowledgement failed: ${e instanceof Error ? e.message : e}`);
    }
  }

  /**
   * `send` for an acknowledgement of something this batch holds, queued on a batch that
   * settles no earlier (batches settle in order): closes `conn` instead if this one failed.
   */
  unlessFailed(conn: Connection, send: () => void): () => void {
    return () => {
      if (this.failure === undefined) send();
      else if (!conn.closing) refuse(conn, this.failure, this.log);
    };
  }

  private take(): Ack[] {
    const acks = this.acks;
    this.acks = [];
    return acks;
  }
}

/** The client resends what was not acknowledged after it reconnects. */
export function refuse(conn: Connection, why: string, log: (line: string) => void): void {
  log(`closing ${conn.describe()}: cannot store its session (${why})`);
  conn.close(0x80);
}

function isBehind(conn: Connection, dirty: ReadonlySet<string>): boolean {
  const session = conn.session;
  return session !== undefined && dirty.has(session.clientId);
}

function noop(): void {}
