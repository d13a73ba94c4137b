/**
 * The cluster bus over Redis (npm `redis`).
 *
 * Messages between nodes go over Redis pub/sub: one channel per node (a node receives only what
 * matches its routes), one for broadcasts, one for route changes and one for heartbeats. Frames
 * go out on one connection (redis_publisher.ts) and every channel is read on one other
 * (redis_subscriber.ts), so what one node sends another arrives in the order it was sent;
 * commands use a third (npm `redis`). Pub/sub keeps nothing: what is published while a node is
 * not subscribed is lost (README: what each message type may lose).
 *
 * Keys (prefix `mqttx:cluster:`): `node:<id>` liveness (a token with a TTL of node-timeout,
 * refreshed each heartbeat), `nodes` (hash id → since), `routes:<id>` (set of filters),
 * `wills:<id>` (hash client id → will), `owner` (hash client id → "epoch node"), `writer` (the
 * same, once the previous owner handed over: the fence the store's writes check), `epoch`.
 */
import { redisClient } from "../store/redis_client.ts";
import { Buffer } from "node:buffer";
import { decodeWill, encodeWill, HEARTBEAT, TAKE_ALL } from "./redis_scripts.ts";
import { RedisOwners } from "./redis_owners.ts";
import { HeirLocks } from "./redis_heir.ts";
import type { MessageData } from "../store/types.ts";
import { decodeBusFrame } from "./codec.ts";
import { FrameBatcher } from "./batch.ts";
import { RedisPublisher } from "./redis_publisher.ts";
import { RedisSubscriber } from "./redis_subscriber.ts";
import { escapeForLog } from "../log/escape.ts";
import { acquireNodeId } from "./node_id.ts";
import type { BusHandlers, BusMessage, ClusterBus, NodeId, NodeInfo } from "./types.ts";

export interface RedisBusOptions {
  url: string;
  nodeId: NodeId;
  /** ms between heartbeats. */
  heartbeatInterval: number;
  /** ms without a heartbeat after which a node counts as dead. */
  nodeTimeout: number;
  /** Key and channel prefix. Default "mqttx:cluster:". */
  prefix?: string;
  log?: (line: string) => void;
}

// deno-lint-ignore no-explicit-any
type Client = any;

export class RedisBus implements ClusterBus {
  readonly nodeId: NodeId;
  private readonly p: string;
  private readonly token = crypto.randomUUID();
  private readonly since = Date.now();
  private cmd: Client;
  /** Frames, broadcasts and control messages, on one connection (redis_subscriber.ts). */
  private readonly sub: RedisSubscriber;
  protected handlers: BusHandlers | undefined;
  /**
   * Other live nodes and when we last heard of them; `run`: the `since` its run announced (a
   * broker-id's runs told apart), undefined until heard from the node itself.
   */
  private readonly peers = new Map<NodeId, { info: NodeInfo; seen: number; run?: number }>();
  /** Route changes heard while each running resync reads the table. */
  private readonly resyncLogs = new Set<{ n: NodeId; f?: string; p?: number }[]>();
  /** Our own routes and wills, rewritten whole after Redis comes back. */
  private readonly localRoutes = new Set<string>();
  private lastRoute: Promise<unknown> = Promise.resolve();
  /** Route changes and frames are read on one connection (route_sync.ts); not over Kafka. */
  readonly routesInOrder: boolean = true;
  private readonly wills = new Map<string, MessageData>();
  private timer: ReturnType<typeof setInterval> | undefined;
  private beating = false; // a heartbeat is under way
  private rejoining = false;
  private beats = 0;
  private up: boolean | undefined;
  private closed = false;
  private readonly log: (line: string) => void;
  /** What this turn sends, one frame per destination (batch.ts). */
  protected readonly frames: FrameBatcher;
  private readonly owners_: RedisOwners;
  protected readonly heirs: HeirLocks;
  /** Where the frames go (redis_publisher.ts); made at the first frame (Kafka sends its own). */
  private publisher: RedisPublisher | undefined;

  constructor(private readonly o: RedisBusOptions) {
    this.nodeId = o.nodeId;
    this.frames = new FrameBatcher(o.nodeId, (to, frame, n) => this.sendFrame(to, frame, n));
    this.p = o.prefix ?? "mqttx:cluster:";
    this.log = o.log ?? (() => {});
    this.cmd = redisClient(o.url, 2_000);
    this.sub = new RedisSubscriber(o.url);
    this.owners_ = new RedisOwners(this.cmd, {
      epoch: this.key("epoch"),
      owner: this.key("owner"),
      writer: this.writers,
    }, this.nodeId);
    this.heirs = new HeirLocks(this.cmd, (name) => this.key(name), this.token, o.nodeTimeout);
    this.cmd.on("error", (e: Error) => this.setState(false, e.message));
    this.cmd.on("ready", () => {
      if (this.up === false) void this.rejoin();
    });
  }

  private key(name: string): string {
    return this.p + name;
  }

  async join(handlers: BusHandlers): Promise<void> {
    this.handlers = handlers;
    await this.cmd.connect();
    await this.acquireId();
    await this.heirs.waitForHeir(this.nodeId, this.o.heartbeatInterval, this.log);
    // A previous run of this id that died: its wills are still owed.
    await this.reap();
    await this.cmd.sendCommand(["HSET", this.key("nodes"), this.nodeId, String(this.since)]);
    await this.listen();
    await this.sub.subscribe([this.key("chan:ctl")], (b) => this.onControl(b.toString()));
    await this.announce("up");
    await this.resync();
    this.up = true;
    this.timer = setInterval(() => void this.heartbeat(), this.o.heartbeatInterval);
  }

  /** Start receiving messages sent to this node and broadcasts (another bus may carry them). */
  protected async listen(): Promise<void> {
    await this.sub.subscribe(
      [this.key("chan:" + this.nodeId), this.key("chan:all")],
      (b) => this.onBusMessage(b),
    );
  }

  async leave(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.timer);
    this.frames.flush(); // what this turn sent goes out before the leave
    await this.publisher?.settled(); // and Redis took it (the leave goes on another connection)
    (this.publisher ??= new RedisPublisher(this.o.url, this.log)).close(); // nothing is sent after it
    // Never joined (a duplicate id, Redis down at start): the keys are another node's.
    if (this.timer !== undefined) await this.unregister();
    this.sub.close();
    try {
      await this.cmd.close();
    } catch {
      this.cmd.destroy();
    }
  }

  /** Stop as a killed process would (tests): no leave, no more heartbeats, keys left to expire. */
  abandon(): void {
    this.closed = true;
    clearInterval(this.timer);
    this.frames.clear();
    (this.publisher ??= new RedisPublisher(this.o.url, this.log)).close();
    this.sub.close();
    this.cmd.destroy();
  }

  private async unregister(): Promise<void> {
    try {
      await this.cmd.multi()
        .addCommand(["DEL", this.key("node:" + this.nodeId), this.key("routes:" + this.nodeId)])
        .addCommand(["DEL", this.key("wills:" + this.nodeId)])
        .addCommand(["HDEL", this.key("nodes"), this.nodeId])
        .addCommand([
          "PUBLISH",
          this.key("chan:ctl"),
          JSON.stringify({ ...this.leaveNote(), n: this.nodeId, x: "leave", s: this.since }),
        ])
        .exec();
    } catch {
      // Redis down: the others find out by the liveness timeout.
    }
  }

  /** What the leave announcement carries besides the id (Kafka: where its last frames are). */
  protected leaveNote(): Record<string, unknown> {
    return {};
  }

  /**
   * `node` announced its leave, carrying `note`: it is gone, and leaves no wills. Unless a later
   * run of its broker-id is here already (a leave held back, kafka.ts): that one stays.
   */
  protected left(node: NodeId, note: Record<string, unknown>): void {
    const run = this.peers.get(node)?.run;
    if (typeof note.s === "number" && run !== undefined && run !== note.s) return;
    if (this.peers.delete(node)) this.handlers?.nodeDown(node, [], false);
  }

  route(filter: string, present: boolean): void {
    if (present) this.localRoutes.add(filter);
    else this.localRoutes.delete(filter);
    const set = this.key("routes:" + this.nodeId);
    const change = JSON.stringify({ n: this.nodeId, f: filter, p: present ? 1 : 0 });
    this.lastRoute = this.cmd.multi()
      .addCommand([present ? "SADD" : "SREM", set, filter])
      .addCommand(["PUBLISH", this.key("chan:ctl"), change])
      .exec().catch(() => {}); // rewritten whole when Redis is back
  }

  /** One connection runs them in order: the last one applied, all are. */
  routesApplied(): Promise<void> {
    return this.lastRoute.then(() => {});
  }

  send(to: NodeId, msg: BusMessage): void {
    this.frames.add(to, msg);
  }

  broadcast(msg: BusMessage): void {
    this.frames.add(undefined, msg);
  }

  /**
   * One frame of this turn's messages to `to` (undefined: all): one PUBLISH, written now. True:
   * the publisher copied the frame into the command (or dropped it), nothing holds it after.
   */
  protected sendFrame(to: NodeId | undefined, frame: Uint8Array, _count: number): boolean | void {
    const channel = this.key(to === undefined ? "chan:all" : "chan:" + to);
    (this.publisher ??= new RedisPublisher(this.o.url, this.log)).publish(channel, frame);
    return true;
  }

  nodes(): NodeInfo[] {
    return [{ id: this.nodeId, since: this.since }, ...[...this.peers.values()].map((p) => p.info)];
  }

  claim(clientId: string): Promise<{ epoch: number; previous?: NodeId }> {
    return this.owners_.claim(clientId);
  }

  claimFrom(clientId: string, node: NodeId): Promise<number> {
    return this.owners_.claimFrom(clientId, node);
  }

  /** The hash naming each client's writer ("epoch node"), which the store's writes check. */
  get writers(): string {
    return this.key("writer");
  }

  commit(clientId: string, epoch: number): Promise<boolean> {
    return this.owners_.commit(clientId, epoch);
  }

  ownedBy(node: NodeId): Promise<string[]> {
    return this.owners_.ownedBy(node);
  }

  owners(clientIds: readonly string[]): Promise<Map<string, NodeId>> {
    return this.owners_.owners(clientIds);
  }

  release(clientId: string, epoch: number): void {
    this.owners_.release(clientId, epoch);
  }

  keepWill(clientId: string, will: MessageData | undefined): void {
    const key = this.key("wills:" + this.nodeId);
    if (!will) {
      if (this.wills.delete(clientId)) {
        this.cmd.sendCommand(["HDEL", key, clientId]).catch(() => {});
      }
      return;
    }
    this.wills.set(clientId, will);
    this.cmd.sendCommand(["HSET", key, clientId, encodeWill(will)]).catch(() => {});
  }

  // ---- internals

  /** Take `node:<id>` (node_id.ts); a holder that keeps refreshing it is a live duplicate. */
  private acquireId(): Promise<void> {
    return acquireNodeId(
      this.cmd,
      this.key("node:" + this.nodeId),
      this.token,
      this.nodeId,
      this.o,
    );
  }

  private async heartbeat(): Promise<void> {
    if (this.beating) return; // one at a time: ticks pass while Redis is slow to answer
    this.beating = true;
    try {
      const keys = [this.key("node:" + this.nodeId), this.key("nodes")];
      const timeout = String(this.o.nodeTimeout);
      const ok = await this.cmd.sendCommand(
        ["EVAL", HEARTBEAT, "2", ...keys, this.token, timeout, this.nodeId],
      );
      if (Number(ok) === 0) this.log(`cluster: broker-id ${this.nodeId} was taken by another node`);
      if (Number(ok) === 2 && !this.closed) {
        this.log(`cluster: declared dead by the others (silent past node-timeout); joining again`);
        return void this.rejoin(); // (not awaited: a rejoin stuck on Redis stops no heartbeat)
      }
      if (this.up === false && !this.closed) void this.rejoin(); // one that failed: again
      const beat = JSON.stringify({ n: this.nodeId, x: "hb", s: this.since });
      await this.cmd.sendCommand(["PUBLISH", this.key("chan:ctl"), beat]);
      await this.heirs.refresh();
      const now = Date.now();
      for (const [id, p] of this.peers) {
        // A heartbeat of grace: a node restarting takes its id back as the key expires.
        if (now - p.seen <= this.o.nodeTimeout + this.o.heartbeatInterval) continue;
        const alive = Number(await this.cmd.sendCommand(["EXISTS", this.key("node:" + id)]));
        if (alive) p.seen = now; // heard nothing, but it is registered: give it time
        else await this.down(id);
      }
      // Anti-entropy: read every route again about once per node-timeout, so a change missed
      // while a connection was down (pub/sub keeps nothing) is repaired within that time.
      if (
        ++this.beats % Math.max(5, Math.ceil(this.o.nodeTimeout / this.o.heartbeatInterval)) === 0
      ) {
        await this.resync();
      }
    } catch {
      // Redis down: logged by the error handler; checked again next beat.
    } finally {
      this.beating = false;
    }
  }

  /** `id` stopped refreshing its liveness: gone, unless a new run took the id (redis_heir.ts). */
  private async down(id: NodeId): Promise<void> {
    const p = this.peers.get(id);
    if (!p || !this.peers.delete(id)) return;
    const dead = await this.heirs.down(id);
    if (!dead) {
      if (!this.peers.has(id)) this.peers.set(id, { ...p, seen: Date.now() });
      return;
    }
    // One survivor (the first to declare it) inherits its offline sessions.
    this.handlers?.nodeDown(id, dead.wills, dead.heir);
  }

  /** The heir of `node` has taken its sessions over (and read what waited for them). */
  inherited(node: NodeId): void {
    this.heirs.done(node);
  }

  /** A previous run of this id that died: take its wills (the others did not) and routes. */
  private async reap(): Promise<void> {
    const id = this.nodeId;
    const w = await this.cmd.sendCommand(["EVAL", TAKE_ALL, "1", this.key("wills:" + id)]);
    await this.cmd.sendCommand(["DEL", this.key("routes:" + id)]);
    const wills = (w as Buffer[]).filter((_, i) => i % 2 === 1).map(decodeWill)
      .filter((m) => m !== undefined);
    if (wills.length > 0) this.handlers?.nodeDown(id, wills, false);
  }

  private onBusMessage(b: Buffer): void {
    const d = decodeBusFrame(b);
    if (!d || d.from === this.nodeId) return;
    this.heard(d.from);
    for (const msg of d.msgs) this.handlers?.message(d.from, msg);
  }

  private onControl(s: string): void {
    let c: { n: NodeId; x?: string; f?: string; p?: number; s?: number; [k: string]: unknown };
    try {
      c = JSON.parse(s);
    } catch {
      return;
    }
    if (c.n === this.nodeId) return;
    if (c.x === "leave") return this.left(c.n, c);
    const known = this.heard(c.n, c.s);
    if (c.f !== undefined) {
      for (const log of this.resyncLogs) log.push(c);
      this.handlers?.route(c.n, c.f, c.p === 1);
    } else if (c.x === "up" && known) {
      // A known node (re)joined: it has just rewritten its routes (Redis may have lost them).
      void this.readRoutes(c.n);
    }
  }

  /**
   * Any message from a node proves it alive; an unknown one has joined. `run`: the `since` the
   * node announced; another than the one known is a new run of the broker-id (restarted, or back
   * while its previous run's leave is held), which takes the previous run's place. Its routes are
   * kept (read again on its "up"): the new run's restored sessions are announced only once they
   * are loaded, and meanwhile what is published for them still goes there (Kafka keeps it; the
   * anti-entropy resync drops the routes no run has). Returns whether the node was known.
   */
  private heard(id: NodeId, run?: number, readRoutes = true): boolean {
    const p = this.peers.get(id);
    if (p) {
      p.seen = Date.now();
      if (run !== undefined && p.run !== run) (p.run = run), (p.info = { id, since: run });
      return true;
    }
    const info = { id, since: run ?? Date.now() };
    this.peers.set(id, { info, seen: Date.now(), run });
    this.handlers?.nodeUp(info);
    // A node we had given up for dead (or never knew) may have routes already.
    if (readRoutes) void this.readRoutes(id);
    return false;
  }

  private async readRoutes(id: NodeId): Promise<void> {
    try {
      const routes = await this.cmd.sendCommand(["SMEMBERS", this.key("routes:" + id)]) as Buffer[];
      if (!this.peers.has(id)) return;
      for (const r of routes) this.handlers?.route(id, r.toString(), true);
    } catch {
      // Redis down: the resync after it comes back reads them
    }
  }

  private announce(x: "up"): Promise<unknown> {
    const msg = JSON.stringify({ n: this.nodeId, x, s: this.since });
    return this.cmd.sendCommand(["PUBLISH", this.key("chan:ctl"), msg]);
  }

  /**
   * Every live node and its routes, read again (after joining or reconnecting). Changes heard
   * while the sets are read may be newer than them: applied again, in order, over the table.
   */
  private async resync(): Promise<void> {
    const log: { n: NodeId; f?: string; p?: number }[] = [];
    this.resyncLogs.add(log);
    try {
      this.handlers?.routes(await this.readTable());
      // Else a new route read too early stays lost until the next resync. Not for a node gone.
      for (const c of log) if (this.peers.has(c.n)) this.handlers?.route(c.n, c.f!, c.p === 1);
    } finally {
      this.resyncLogs.delete(log);
    }
  }

  private async readTable(): Promise<Map<NodeId, string[]>> {
    const all = await this.cmd.sendCommand(["HGETALL", this.key("nodes")]) as Record<
      string,
      Buffer
    >;
    const table = new Map<NodeId, string[]>();
    for (const [id, since] of Object.entries(all ?? {})) {
      if (id === this.nodeId) continue;
      const alive = Number(await this.cmd.sendCommand(["EXISTS", this.key("node:" + id)]));
      if (!alive) {
        this.peers.set(id, { info: { id, since: Number(since) }, seen: 0 });
        await this.down(id);
        continue;
      }
      this.heard(id, Number(since), false);
      const routes = await this.cmd.sendCommand(["SMEMBERS", this.key("routes:" + id)]) as Buffer[];
      table.set(id, routes.map((r) => r.toString()));
    }
    return table;
  }

  /** Redis is back: register again, rewrite our routes and wills, read everyone's routes. */
  private async rejoin(): Promise<void> {
    if (this.rejoining) return; // (a heartbeat and Redis's `ready` may both ask)
    this.rejoining = true;
    try {
      const id = this.nodeId;
      const m = this.cmd.multi()
        .addCommand(["SET", this.key("node:" + id), this.token, "PX", String(this.o.nodeTimeout)])
        .addCommand(["HSET", this.key("nodes"), id, String(this.since)])
        .addCommand(["DEL", this.key("routes:" + id), this.key("wills:" + id)]);
      if (this.localRoutes.size > 0) {
        m.addCommand(["SADD", this.key("routes:" + id), ...this.localRoutes]);
      }
      for (const [c, w] of this.wills) {
        m.addCommand(["HSET", this.key("wills:" + id), c, encodeWill(w)]);
      }
      await m.exec();
      // Not up before the subscriber is: a retained change another node broadcasts
      // while ours is still resubscribing would be missed, and our resync may have read
      // Redis before that node wrote it (tests/cluster_redis_resync_test.ts, under load).
      await this.resubscribed();
      // Frames sent from now on (the resyncs' announcements) are not dropped in a back-off.
      this.publisher?.reconnect();
      await this.announce("up");
      await this.resync();
      this.setState(true);
    } catch {
      // still down; the next ready event tries again
    } finally {
      this.rejoining = false;
    }
  }

  /** Ready only once every SUBSCRIBE is confirmed again after a reconnect. */
  private resubscribed(): Promise<void> {
    return this.sub.whenReady();
  }

  private setState(up: boolean, why?: string): void {
    if (this.closed || this.up === up) return;
    const first = this.up === undefined;
    this.up = up;
    if (!first || !up) {
      this.log(
        up
          ? "cluster: bus connected again"
          : `cluster: bus unreachable (${escapeForLog(why ?? "")})`,
      );
    }
    this.handlers?.state(up);
  }
}
