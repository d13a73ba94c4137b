/**
 * A dead node's heir and a returning run of its broker-id, for the Redis bus
 * (redis.ts). The survivor that declares a node dead first (one script, DOWN)
 * becomes its heir and holds `heir:<id>` while it takes the node's sessions
 * over and reads what waits for them (Kafka: the node's topic, in the node's
 * own consumer group); it keeps the lock alive each heartbeat and marks it done
 * at the end (done, it still keeps a late survivor from becoming a second heir
 * for 2 node timeouts). A new run of that broker-id that finds the lock held
 * waits until it is done before it joins: it would otherwise restore sessions
 * the heir is claiming, and read its Kafka topic in the group the heir reads
 * (each taking what was meant for the other). A heir that dies stops
 * refreshing: its lock expires within 2 node timeouts; one that never says it
 * is done stops refreshing after HOLD_MAX_MS (its Kafka drain gives up after
 * a minute and a node timeout).
 */
import type { Buffer } from "node:buffer";
import { decodeWill, DOWN, HEARTBEAT, HEIR_LOCK } from "./redis_scripts.ts";
import type { MessageData } from "../store/types.ts";
import type { NodeId } from "./types.ts";

// deno-lint-ignore no-explicit-any
type Client = any;

/** The longest a heir keeps a returning run waiting (ms), node timeouts aside. */
const HOLD_MAX_MS = 120_000;

interface Keys {
  node(id: NodeId): string;
  wills(id: NodeId): string;
  routes(id: NodeId): string;
  nodes: string;
  heir(id: NodeId): string;
}

export class HeirLocks {
  /** Dead nodes whose sessions this node is taking over (it holds their heir lock): since when. */
  private readonly held = new Map<NodeId, number>();
  /** When holds() last found each lock ours. */
  private readonly confirmed = new Map<NodeId, number>();

  private readonly keys: Keys;

  /** `key`: the bus's key of a name (`node:<id>`, `nodes`, ...). */
  constructor(
    private readonly cmd: Client,
    key: (name: string) => string,
    private readonly token: string,
    private readonly nodeTimeout: number,
  ) {
    this.keys = {
      node: (id) => key("node:" + id),
      wills: (id) => key("wills:" + id),
      routes: (id) => key("routes:" + id),
      nodes: key("nodes"),
      heir: (id) => key("heir:" + id),
    };
  }

  /**
   * Declare `id` dead: undefined if a new run has its id already (alive); else its wills
   * (to this caller alone) and whether this node is its heir.
   */
  async down(id: NodeId): Promise<{ wills: MessageData[]; heir: boolean } | undefined> {
    const k = this.keys;
    const r = await this.cmd.sendCommand([
      "EVAL",
      DOWN,
      "5",
      k.node(id),
      k.wills(id),
      k.routes(id),
      k.nodes,
      k.heir(id),
      id,
      this.token,
      String(this.nodeTimeout * 2),
    ]) as [number, number?, ...Buffer[]];
    if (Number(r[0]) === 1) return undefined;
    const heir = Number(r[1]) === 1;
    if (heir) this.held.set(id, Date.now());
    const flat = r.slice(2) as Buffer[];
    const wills = flat.filter((_, i) => i % 2 === 1).map(decodeWill).filter((m) => !!m);
    return { wills: wills as MessageData[], heir };
  }

  /** Each heartbeat: the locks of the takeovers still under way are kept. */
  async refresh(): Promise<void> {
    const until = Date.now() - HOLD_MAX_MS - 2 * this.nodeTimeout;
    for (const [id, since] of this.held) {
      if (since < until) this.held.delete(id); // expires within 2 node timeouts
      else await this.lock(id, "keep");
    }
  }

  /**
   * Whether this node still holds `id`'s heir lock. Lost (this node stalled past it, say), a
   * returning run of `id` may have joined and taken the sessions and the Kafka topic over.
   */
  async holds(id: NodeId): Promise<boolean> {
    const get = this.cmd.sendCommand(["GET", this.keys.heir(id)]) as Promise<Buffer | null>;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const late = new Promise<"late">((r) => timer = setTimeout(() => r("late"), this.nodeTimeout));
    const v = await Promise.race([get, late]).catch(() => "late" as const);
    clearTimeout(timer);
    if (v === "late") {
      // Redis unreachable or stalled: held as long as our last check can still stand (the lock
      // lasts 2 node timeouts from its last refresh), not for good.
      return Date.now() - (this.confirmed.get(id) ?? 0) < this.nodeTimeout;
    }
    const held = v !== null && v.toString() === this.token;
    if (held) this.confirmed.set(id, Date.now());
    return held;
  }

  /** `id`'s sessions are being read (the heir's drain): its lock is kept as long as that. */
  reading(id: NodeId): void {
    if (!this.held.has(id)) return;
    this.held.set(id, Date.now());
    this.confirmed.set(id, Date.now()); // (kept by our heartbeats since the takeover)
  }

  /** This node is done taking `id`'s sessions over: a returning run may join. */
  done(id: NodeId): void {
    this.confirmed.delete(id);
    if (this.held.delete(id)) this.lock(id, "done").catch(() => {});
  }

  private lock(id: NodeId, what: "keep" | "done"): Promise<unknown> {
    return this.cmd.sendCommand(
      ["EVAL", HEIR_LOCK, "1", this.keys.heir(id), this.token, what, String(this.nodeTimeout * 2)],
    );
  }

  /**
   * Before this node joins under broker-id `id` (its liveness key taken): while a heir of its
   * previous run is at work, wait, keeping the id. Logs once when it waits.
   */
  async waitForHeir(id: NodeId, heartbeatMs: number, log: (line: string) => void): Promise<void> {
    const key = this.keys.heir(id);
    let waited = false;
    for (;;) {
      const v = await this.cmd.sendCommand(["GET", key]) as Buffer | null;
      if (v === null) break;
      if (v.toString() === "done") {
        // This run is alive now: when it dies, its survivors need the lock free.
        await this.cmd.sendCommand(["DEL", key]);
        break;
      }
      if (!waited) {
        log(
          `cluster: the previous run of broker-id ${id} died and another node is taking ` +
            `its sessions over; joining once it is done`,
        );
      }
      waited = true;
      await new Promise((r) => setTimeout(r, heartbeatMs));
      await this.cmd.sendCommand(
        ["EVAL", HEARTBEAT, "1", this.keys.node(id), this.token, String(this.nodeTimeout)],
      );
    }
    if (waited) log(`cluster: the sessions of broker-id ${id}'s previous run are taken over`);
  }
}
