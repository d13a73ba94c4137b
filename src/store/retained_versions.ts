/**
 * The order of retained changes where a shared store orders them (the Redis
 * store, the one a cluster uses): Redis gives every change of a retained
 * message a version (one counter for every topic, increased by the same script
 * call that writes), and this index takes a change only if it is newer than
 * the one it holds, whether it comes from this node's write, another node's
 * announcement or a read of Redis. Whatever order those arrive in, every node
 * ends with the change Redis ordered last, which is what Redis holds.
 *
 * - This node's own change shows at once (its subscribers see their write);
 *   changes heard from others meanwhile are kept aside, and once Redis has
 *   answered the topic's last write from here, the newest of them all shows.
 * - A clear leaves a tombstone (the topic's version), so an older change heard
 *   later brings nothing back. Tombstones are forgotten after TOMBSTONE_MS;
 *   a change heard later for a topic not held here that is no newer than a
 *   forgotten tombstone is checked against Redis instead (`heard` says so).
 */
import { RetainedMemory } from "./retained.ts";
import type { MessageData } from "./types.ts";

/** How long a clear's version is kept: far longer than any announcement takes to arrive. */
export const TOMBSTONE_MS = 10 * 60_000;

interface Versioned {
  readonly version: number;
  readonly message: MessageData | undefined;
}

/** A topic this node wrote that Redis has not answered yet. */
interface Pending {
  /** This node's last write of the topic (`local()`). */
  seq: number;
  message: MessageData | undefined;
  /** The newest change Redis ordered that is known here (own writes answered, others heard). */
  best?: Versioned;
}

export class RetainedVersions {
  readonly memory = new RetainedMemory();
  /** The version of what the index holds for each topic (a tombstone when cleared). */
  private readonly versions = new Map<string, number>();
  private readonly pending = new Map<string, Pending>();
  /** Cleared topics: when, oldest first. */
  private readonly tombstones = new Map<string, number>();
  /** The newest version of a forgotten tombstone. */
  private forgotten = 0;
  private seq = 0;
  /** The newest version seen: Redis numbers from above it even after losing its counter. */
  newest = 0;
  /** While a resync runs (`track`): the topics whose change was set or made here meanwhile. */
  private tracked: Set<string> | undefined;

  /** From now on, note each topic whose change is set or made here; until `untrack()`. */
  track(): ReadonlySet<string> {
    return (this.tracked = new Set());
  }

  untrack(): void {
    this.tracked = undefined;
  }

  /** This node changes `topic` (shown at once); returns the write's number, for `written()`. */
  local(topic: string, message: MessageData | undefined): number {
    const stored = this.memory.set(topic, message);
    this.tracked?.add(topic);
    const seq = ++this.seq;
    const p = this.pending.get(topic);
    if (p) (p.seq = seq), (p.message = stored);
    else this.pending.set(topic, { seq, message: stored });
    return seq;
  }

  /** The change this node's write of `topic` is waiting for Redis to take (`seq` and message). */
  unwritten(topic: string): { seq: number; message: MessageData | undefined } | undefined {
    return this.pending.get(topic);
  }

  /** Redis took this node's write `seq` of `topic` as `version`. */
  written(topic: string, seq: number, version: number): void {
    const p = this.pending.get(topic);
    if (!p) return;
    this.saw(version);
    if (!p.best || version > p.best.version) p.best = { version, message: p.message };
    if (p.seq !== seq) return; // a later write from here is on its way
    this.pending.delete(topic);
    this.set(topic, p.best.version, p.best.message);
  }

  /**
   * Another node's change, or what Redis holds: taken if newer than what is
   * held here. False: not known to be newer or older (see the module comment);
   * the caller reads Redis (`fromRedis`).
   */
  heard(topic: string, version: number, message: MessageData | undefined): boolean {
    this.saw(version);
    const p = this.pending.get(topic);
    if (p) {
      if (!p.best || version > p.best.version) p.best = { version, message };
      return true;
    }
    const held = this.versions.get(topic);
    if (held === undefined && version <= this.forgotten) return false;
    if (held === undefined || version > held) this.set(topic, version, message);
    return true;
  }

  /**
   * Redis holds `message` at `version` for `topic` (undefined: nothing, and the
   * counter was at `version` before it was read): taken unless what is held
   * here is newer, or `always` (Redis lost its data and was written again).
   */
  fromRedis(topic: string, version: number, message: MessageData | undefined, always = false) {
    this.saw(version);
    if (this.pending.has(topic)) return;
    const held = this.versions.get(topic);
    if (always || held === undefined || version > held) this.set(topic, version, message);
  }

  /** A change not ordered by Redis (a store or bus without versions): taken as it comes. */
  unordered(topic: string, message: MessageData | undefined): void {
    this.memory.set(topic, message);
    this.tracked?.add(topic);
    this.versions.delete(topic);
    this.tombstones.delete(topic);
  }

  /** This node's change of `topic` that Redis never took gives way to the newest one heard. */
  abandon(topic: string): void {
    const p = this.pending.get(topic);
    if (!p?.best) return;
    this.pending.delete(topic);
    this.set(topic, p.best.version, p.best.message);
  }

  /** The held change of `topic` and its version; undefined while a write from here is unanswered. */
  held(topic: string): Versioned | undefined {
    if (this.pending.has(topic)) return undefined;
    const version = this.versions.get(topic);
    return version === undefined ? undefined : { version, message: this.memory.index.get(topic) };
  }

  /** The retained message of `topic` expired here: returns the version it had. */
  expired(topic: string): number | undefined {
    const version = this.versions.get(topic);
    this.versions.delete(topic);
    return version;
  }

  private set(topic: string, version: number, message: MessageData | undefined): void {
    this.memory.set(topic, message);
    this.tracked?.add(topic);
    this.versions.set(topic, version);
    this.tombstones.delete(topic);
    if (message) return;
    const now = Date.now();
    this.tombstones.set(topic, now);
    for (const [t, at] of this.tombstones) {
      if (at > now - TOMBSTONE_MS) break;
      this.tombstones.delete(t);
      this.forgotten = Math.max(this.forgotten, this.versions.get(t) ?? 0);
      this.versions.delete(t);
    }
  }

  private saw(version: number): void {
    if (version > this.newest) this.newest = version;
  }
}
