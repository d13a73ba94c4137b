import type { SessionBatch, SessionChange, StoredMessage } from "./types.ts";

/**
 * Collects the session changes of one tick into a `SessionBatch`: changes
 * grouped per client (each group applied atomically by the store), every
 * message carried once however many sessions it goes to.
 */
export class SessionBatchBuilder implements SessionBatch {
  readonly messages: StoredMessage[] = [];
  readonly changes = new Map<string, SessionChange[]>();
  private readonly carried = new Set<string>();

  get size(): number {
    return this.changes.size;
  }

  /** Carry `message` in this batch (once) for the `enqueue`/`send` changes that refer to it. */
  message(message: StoredMessage): this {
    if (!this.carried.has(message.id)) {
      this.carried.add(message.id);
      this.messages.push(message);
    }
    return this;
  }

  add(change: SessionChange): this {
    const clientId = change.kind === "meta" ? change.meta.clientId : change.clientId;
    const list = this.changes.get(clientId);
    if (list) list.push(change);
    else this.changes.set(clientId, [change]);
    return this;
  }
}
