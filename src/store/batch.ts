import type { BatchRider, SessionBatch, SessionChange, StoredMessage } from "./types.ts";

interface Later {
  readonly id: string;
  readonly make: () => StoredMessage;
}

/** A `send` not yet written, and the `release` that followed it in the same batch. */
interface Pending {
  readonly change: SessionChange;
  /** Its place among the batch's sends (`sends`). */
  readonly seq: number;
  release?: SessionChange;
}

/**
 * Collects the session changes written together into a `SessionBatch`:
 * changes grouped per client (each group applied atomically by the store),
 * every message carried once however many sessions it goes to.
 *
 * A delivery sent and completed before its batch is written leaves the batch
 * (`send`, any `release`, `complete`): applied together they change nothing
 * the store keeps but the last packet id, an id whose flow completed and may
 * be used again [MQTT-2.2.1-3]. A message no change refers to any more is not
 * carried. This is what makes an online persistent subscriber cheap: what it
 * acknowledges within one write is never stored and deleted.
 */
export class SessionBatchBuilder implements SessionBatch {
  readonly changes = new Map<string, SessionChange[]>();
  readonly riders: BatchRider[] = [];
  private carriedList: (StoredMessage | Later)[] = [];
  /** Some carried messages are still to be made. */
  private lazy = false;
  /** Message id → the changes of this batch that refer to it. */
  private readonly carried = new Map<string, number>();
  /** Carried messages no change refers to any more (left out by `messages`). */
  private unused = 0;
  /** Sends from no queue not yet completed, per client and packet id. */
  private readonly pending = new Map<string, Map<number, Pending>>();
  /** Sends that left this batch, completed before it was written. */
  cancelled = 0;
  /** Sends from no queue added to this batch so far. */
  sends = 0;

  get size(): number {
    return this.changes.size;
  }

  /** Deliveries sent by this batch and not completed yet (their acknowledgement may be close). */
  get sending(): boolean {
    for (const ids of this.pending.values()) if (ids.size > 0) return true;
    return false;
  }

  /** Some send among the first `n` of this batch is not completed yet. */
  pendingBefore(n: number): boolean {
    for (const ids of this.pending.values()) {
      // Oldest first (insertion order), so the first entry says it.
      for (const p of ids.values()) {
        if (p.seq < n) return true;
        break;
      }
    }
    return false;
  }

  /** Messages first referenced by this batch's changes, each once. */
  get messages(): readonly StoredMessage[] {
    if (this.unused > 0) {
      this.unused = 0;
      this.carriedList = this.carriedList.filter((m) => {
        if (this.carried.get(m.id)! > 0) return true;
        this.carried.delete(m.id); // carried again from scratch if a later change needs it
        return false;
      });
    }
    if (this.lazy) {
      this.lazy = false;
      this.carriedList = this.carriedList.map((m) => "make" in m ? m.make() : m);
    }
    return this.carriedList as StoredMessage[];
  }

  /** Whether a change of this batch refers (or referred, before it was cancelled) to message `id`. */
  carries(id: string): boolean {
    return this.carried.has(id);
  }

  /** Carry `message` in this batch (once) for the `enqueue`/`send` change that refers to it. */
  message(message: StoredMessage): this {
    return this.carry(message.id, message);
  }

  /**
   * The same, made only if the batch is written with it: a delivery completed
   * before then costs no copy of its message.
   */
  messageLater(id: string, make: () => StoredMessage): this {
    return this.carry(id, { id, make });
  }

  private carry(id: string, m: StoredMessage | Later): this {
    const uses = this.carried.get(id);
    if (uses === undefined) {
      this.carriedList.push(m);
      if ("make" in m) this.lazy = true;
    } else if (uses === 0) this.unused--;
    this.carried.set(id, (uses ?? 0) + 1);
    return this;
  }

  add(change: SessionChange): this {
    const clientId = change.kind === "meta" ? change.meta.clientId : change.clientId;
    let list = this.changes.get(clientId);
    switch (change.kind) {
      case "send":
        if (!change.fromQueue) {
          this.pendingOf(clientId).set(change.inflight.packetId, { change, seq: this.sends++ });
        }
        break;
      case "release": {
        const p = this.pending.get(clientId)?.get(change.packetId);
        if (p) p.release = change;
        break;
      }
      case "complete": {
        const ids = this.pending.get(clientId);
        const p = ids?.get(change.packetId);
        if (p && list) {
          ids!.delete(change.packetId);
          // The client's group stays, even empty: a store may still check the client
          // (the cluster's ownership fence refuses a stale node's session at its next batch).
          this.cancel(list, p);
          this.cancelled++;
          return this;
        }
        break;
      }
      case "delete":
        this.pending.delete(clientId); // packet ids start again after it
        break;
    }
    if (list) list.push(change);
    else this.changes.set(clientId, list = [change]);
    return this;
  }

  private pendingOf(clientId: string): Map<number, Pending> {
    let ids = this.pending.get(clientId);
    if (!ids) this.pending.set(clientId, ids = new Map());
    return ids;
  }

  /** Take a send (and its release) out; acknowledgements come in order, so it is near the front. */
  private cancel(list: SessionChange[], p: Pending): void {
    list.splice(list.indexOf(p.change), 1);
    if (p.release) list.splice(list.indexOf(p.release), 1);
    if (p.change.kind !== "send") return;
    const id = p.change.inflight.messageId;
    const uses = this.carried.get(id);
    if (uses === undefined) return; // carried by an earlier batch
    this.carried.set(id, uses - 1);
    if (uses === 1) this.unused++;
  }
}
