/**
 * Retained messages across nodes: a retained change here (a publish, a will,
 * the admin API) is sent whole to every node's in-memory index (the Redis store
 * holds the shared copy) with the version Redis gave it; each node takes only
 * changes newer than the one it holds, so all end with the change Redis
 * ordered last (store/retained_versions.ts). Back from a bus outage, the node
 * reads the index again from Redis and sends the changes the others missed.
 */
import type { MessageData, RetainedWrite } from "../store/types.ts";
import type { ClusterBus } from "./types.ts";

/** The in-memory retained index of this node's store, updated for other nodes' writes. */
export interface RetainedCache {
  /** Another node's change, taken if newer than what is held (`version` absent: taken). */
  cacheRetained(topic: string, message: MessageData | undefined, version?: number): void;
  retainedOf(topic: string): MessageData | undefined;
  /** What Redis holds for `topic` as far as this node knows (none while a write is under way). */
  retainedHeld(topic: string): { version: number; message: MessageData | undefined } | undefined;
  /** Write the changes the shared store could not take yet; rejects while it still cannot. */
  flushRetained(): Promise<void>;
  /** Read the retained set into the index again; returns the topics it wrote back. */
  resyncRetained(): Promise<string[]>;
}

export class RetainedSync {
  private busUp = true;
  private stopped = false;
  /** Retained changes made here that other nodes may have missed (bus or store down). */
  private readonly unannounced = new Set<string>();
  /** The running resync, and whether another must follow it. */
  private resyncing: Promise<void> | undefined = undefined;
  private resyncAgain = false;

  constructor(
    private readonly bus: ClusterBus,
    private readonly cache: RetainedCache | undefined,
    private readonly log: (line: string) => void,
  ) {}

  /** Another node's change. */
  received(topic: string, message: MessageData | undefined, version: number | undefined): void {
    this.cache?.cacheRetained(topic, message, version);
  }

  /** The bus was lost or is back: back, send what the others missed. */
  busState(up: boolean): void {
    this.busUp = up;
    if (up) this.resync();
  }

  stop(): void {
    this.stopped = true;
  }

  /** Resolves once no resync is running (tests). */
  async settled(): Promise<void> {
    while (this.resyncing) await this.resyncing;
  }

  /** A retained change here, `stored` once Redis has it (none: not written to Redis). */
  changed(
    topic: string,
    message: MessageData | undefined,
    stored: void | Promise<RetainedWrite>,
  ): void {
    if (!stored) return this.announce(topic, message, undefined);
    // Announced only once Redis holds it: a node that hears of it and then reads Redis (its
    // retained resync) reads this change or a newer one, never the one before it, which would
    // undo it there for good (tests/cluster_retained_race_test.ts). No round trip is added:
    // the publish is routed after this same write. It carries the version Redis gave it: the
    // others take it only if newer than what they hold, so all end with Redis's last.
    stored.then((v) => this.announce(topic, message, v ?? undefined), () => {
      // Not in Redis: the others hear of it once the store takes it (the resync retries).
      this.unannounced.add(topic);
      this.resync();
    });
  }

  private announce(
    topic: string,
    message: MessageData | undefined,
    version: number | undefined,
  ): void {
    if (this.busUp) this.bus.broadcast({ kind: "retained", topic, message, version });
    else this.unannounced.add(topic); // the others hear of it once the bus is back
  }

  /** Read the retained index again from Redis, then send the changes the others missed. */
  resync(): void {
    if (!this.cache || this.stopped) return;
    if (this.resyncing) {
      this.resyncAgain = true;
      return;
    }
    const cache = this.cache;
    const run = async () => {
      for (let delay = 200; !this.stopped && this.busUp; delay = Math.min(delay * 2, 5_000)) {
        try {
          const missed = [...this.unannounced];
          await cache.flushRetained();
          // Written back into an emptied Redis: announced too, so all end with the write-back
          // Redis ordered last (another node's may have come first).
          const rewritten = await cache.resyncRetained();
          for (const topic of missed) this.unannounced.delete(topic);
          for (const topic of new Set([...missed, ...rewritten])) {
            // None: a later change here is being written, and is announced once it is.
            const held = cache.retainedHeld(topic);
            if (!held) continue;
            this.bus.broadcast({ kind: "retained", topic, ...held });
          }
          if (missed.length > 0) {
            this.log(`cluster: sent ${missed.length} retained changes the others missed`);
          }
          return;
        } catch (e) {
          if (delay === 200) this.log(`cluster: retained resync failed, retrying: ${e}`);
          await new Promise((r) => setTimeout(r, delay));
        }
      }
    };
    this.resyncing = run().finally(() => {
      this.resyncing = undefined;
      if (this.resyncAgain) {
        this.resyncAgain = false;
        this.resync();
      }
    });
  }
}
