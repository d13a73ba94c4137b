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
  /** `kept()`'s promise, made on first ask; and the outcome, once settled. */
  private keep: Settle | undefined;
  private outcome: "kept" | "behind" | Error | undefined;

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
    // Settled already (its acknowledgements ran): one asked for now would wait for ever.
    if (this.outcome !== undefined) this.runAcks();
    return this.done ??= this.promise.then(noop, noop);
  }

  stored(): void {
    // A session an earlier batch failed to store while this one was written (its rewrite,
    // say) is not acknowledged either, as when it was behind at the ask (journal.acknowledge).
    this.settle(this.dirty.size > 0 ? "behind" : "kept");
    try {
      this.runAcks();
    } finally {
      this.resolve(); // whatever an acknowledgement threw, the waiters on this batch go on
    }
  }

  failed(e: unknown): void {
    const why = this.failure = e instanceof Error ? e.message : String(e);
    this.settle(new Error(why));
    try {
      this.runAcks();
    } finally {
      this.reject(e);
    }
  }

  /** The acknowledgements waiting here, sent or refused as the batch settled. */
  private runAcks(): void {
    const why = this.failure;
    const behind = why === undefined && this.dirty.size > 0 ? this.dirty : undefined;
    for (const a of this.take()) {
      if (a.conn.closing) continue;
      if (why !== undefined) this.run(() => refuse(a.conn, why, this.log));
      else if (a.send && !(behind && isBehind(a.conn, behind))) this.run(a.send);
      else this.run(() => refuse(a.conn, NOT_STORED, this.log));
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

  /**
   * Resolves when this batch is stored and no session of the journal is left behind then (by
   * an earlier batch that failed, not rewritten yet); rejects otherwise. For a promise of
   * "kept" that cannot name its sessions (journal.whenCaughtUp).
   */
  kept(): Promise<void> {
    if (this.outcome !== undefined) return keptAs(this.outcome);
    if (!this.keep) {
      let resolve!: () => void, reject!: (e: Error) => void;
      const promise = new Promise<void>((res, rej) => ((resolve = res), (reject = rej)));
      promise.catch(() => {}); // handled by whoever asked
      this.keep = { promise, resolve, reject };
    }
    return this.keep.promise;
  }

  private settle(outcome: "kept" | "behind" | Error): void {
    this.outcome = outcome;
    if (outcome === "kept") this.keep?.resolve();
    else this.keep?.reject(outcome === "behind" ? new Error(NOT_STORED) : outcome);
  }

  private take(): Ack[] {
    const acks = this.acks;
    this.acks = [];
    return acks;
  }
}

interface Settle {
  readonly promise: Promise<void>;
  readonly resolve: () => void;
  readonly reject: (e: Error) => void;
}

const NOT_STORED = "session not stored";

function keptAs(outcome: "kept" | "behind" | Error): Promise<void> {
  if (outcome === "kept") return Promise.resolve();
  return Promise.reject(outcome === "behind" ? new Error(NOT_STORED) : outcome);
}

/**
 * Everything written so far (`last`: the latest batch, open or being written) stored with no
 * session left behind; undefined when nothing waits and none is behind.
 */
export function caughtUp(
  last: PendingWrite | undefined,
  dirty: ReadonlySet<string>,
): Promise<void> | undefined {
  if (last) return last.kept();
  return dirty.size > 0 ? Promise.reject(new Error(NOT_STORED)) : undefined;
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
