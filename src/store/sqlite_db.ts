/**
 * One SQLite file (`node:sqlite`'s DatabaseSync, the same API on Deno 2.9 and
 * Bun 1.4, embedded in both and in the single binary) and the one way it is
 * written: every write of a tick (session batches, retained changes, bridge
 * queue pushes and removals) runs in one transaction, committed at the end of
 * the tick; each writer's promise resolves only after that COMMIT returned.
 *
 * Durability (the `synchronous` level, WAL mode):
 * - `full` (default): the WAL is fsynced at every COMMIT. What was
 *   acknowledged survives a crash of mqttx and a power cut.
 * - `normal`: no fsync at COMMIT (only at checkpoints). What was acknowledged
 *   survives a crash of mqttx (kill -9: the OS has the bytes), but a power
 *   cut or OS crash can lose the last transactions before the last checkpoint
 *   (the database stays consistent).
 * Space: deleted rows' pages are reused; `auto_vacuum = INCREMENTAL` lets a
 * periodic `incremental_vacuum` give free pages back, and the WAL is
 * truncated to `journal_size_limit` after checkpoints, so the files stay
 * bounded under churn.
 */
import { DatabaseSync, type StatementSync } from "node:sqlite";

export type SqliteSynchronous = "full" | "normal";

export interface SqliteDbOptions {
  path: string;
  synchronous?: SqliteSynchronous;
}

/** WAL bytes kept after a checkpoint. */
const JOURNAL_SIZE_LIMIT = 16 * 1024 * 1024;

export class SqliteDb {
  readonly db: DatabaseSync;
  private ops: (() => void)[] = [];
  private waiters: { resolve: () => void; reject: (e: unknown) => void }[] = [];
  private scheduled = false;
  private closed = false;
  private readonly statements = new Map<string, StatementSync>();

  constructor(readonly options: SqliteDbOptions) {
    this.db = new DatabaseSync(options.path);
    // auto_vacuum only takes effect on a new database (before the first table).
    this.db.exec("PRAGMA auto_vacuum = INCREMENTAL");
    this.db.exec("PRAGMA journal_mode = WAL");
    this.db.exec(`PRAGMA synchronous = ${options.synchronous === "normal" ? "NORMAL" : "FULL"}`);
    this.db.exec(`PRAGMA journal_size_limit = ${JOURNAL_SIZE_LIMIT}`);
    this.db.exec("PRAGMA busy_timeout = 5000");
  }

  /** A prepared statement, compiled once per SQL text. */
  prepare(sql: string): StatementSync {
    let s = this.statements.get(sql);
    if (!s) this.statements.set(sql, s = this.db.prepare(sql));
    return s;
  }

  /**
   * Run `op` inside this tick's transaction; resolves once it is committed,
   * rejects when the transaction failed (then nothing of it is stored).
   */
  write(op: () => void): Promise<void> {
    if (this.closed) return Promise.reject(new Error("the SQLite store is closed"));
    this.ops.push(op);
    const done = new Promise<void>((resolve, reject) => this.waiters.push({ resolve, reject }));
    if (!this.scheduled) {
      this.scheduled = true;
      // After the current task's synchronous work: everything it wrote goes in one COMMIT.
      queueMicrotask(() => this.flush());
    }
    return done;
  }

  /** Commit what is pending now. */
  flush(): void {
    this.scheduled = false;
    const ops = this.ops;
    const waiters = this.waiters;
    if (ops.length === 0) return;
    this.ops = [];
    this.waiters = [];
    try {
      this.db.exec("BEGIN IMMEDIATE");
      try {
        for (const op of ops) op();
        this.db.exec("COMMIT");
      } catch (e) {
        this.db.exec("ROLLBACK");
        throw e;
      }
    } catch (e) {
      for (const w of waiters) w.reject(e);
      return;
    }
    for (const w of waiters) w.resolve();
  }

  /** Give free pages back to the file system (a no-op when there are none). */
  vacuum(): void {
    // One page per step: exec() may step once, so read every row (each frees a page).
    this.prepare("PRAGMA incremental_vacuum").all();
    this.db.exec("PRAGMA wal_checkpoint(TRUNCATE)");
  }

  close(): void {
    if (this.closed) return;
    this.flush();
    this.closed = true;
    this.db.close();
  }
}
