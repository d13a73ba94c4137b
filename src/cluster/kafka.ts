/**
 * The cluster bus with Kafka carrying the messages between nodes
 * (`cluster.type: kafka`). What is shared state stays in Redis, exactly as on
 * the Redis bus (this class extends it): node liveness and heartbeats, the
 * route table and its changes, client ownership and epochs, wills. What one
 * node sends another (publish, ack, kick, released, retained) goes over Kafka:
 *
 * - one topic per node, `<prefix>node.<broker-id>`, always partition 0 (one
 *   log: the order a sender sent in is the order the receiver reads), and one
 *   topic for broadcasts, `<prefix>all`;
 * - each node reads both in its own consumer group, `<prefix>node.<broker-id>`,
 *   and commits what it handed to the node. A node that restarts (same
 *   broker-id) goes on from its committed offset: what was sent to it while it
 *   was down is delivered, not skipped. The first run of a broker-id reads its
 *   own topic from the beginning. Broadcasts (retained changes, whose shared
 *   copy is in Redis and was just loaded) are read from where this run joined;
 * - a restarting node reads only once it has restored its sessions (`ready()`),
 *   so what waited for it finds its sessions;
 * - what one turn sends to one topic is one Kafka record (a frame, batch.ts);
 *   frames wait in a bounded buffer (bounded in messages), one produce request
 *   at a time (order kept through retries), while Kafka is slow or down; past
 *   the bound new ones are dropped and counted. Each side logs once per state
 *   change;
 * - a leave is announced on Redis, but the receivers read the node's last frames
 *   from Kafka later: `leave()` waits (2 s at most) until Kafka has taken every
 *   frame, and the announcement names the offset of the last one per topic; a
 *   receiver hands the leave on once it has read that far (a node timeout at
 *   most), so nothing the node sent arrives after it left. A new run of that broker-id heard
 *   meanwhile (it announces its own `since`) takes the old run's place (redis.ts); the held
 *   leave, naming the old run, removes nothing.
 */
import { Buffer } from "node:buffer";
import { type Consumer, Kafka, type KafkaConfig, logLevel, type Producer } from "kafkajs";
import { bytes } from "../store/redis_codec.ts";
import { describe, refusedForGood } from "../bridge/kafka_out.ts";
import { decodeBusFrame } from "./codec.ts";
import { drainTopic } from "./kafka_drain.ts";
import { RedisBus, type RedisBusOptions } from "./redis.ts";
import type { BusMessage, NodeId } from "./types.ts";

export interface KafkaBusOptions extends RedisBusOptions {
  /** Bootstrap servers, client id, TLS and SASL (as the Kafka bridge's). */
  kafka: Pick<KafkaConfig, "clientId" | "brokers" | "ssl" | "sasl">;
  /** Kafka topic and group names start with it. Default "mqttx.cluster.". */
  topicPrefix?: string;
  /** Messages held while Kafka is slow or down; past it new ones are dropped. Default 100000. */
  bufferSize?: number;
  /** Read nothing until `ready()` (the node restores its sessions first). Default false. */
  holdUntilReady?: boolean;
}

interface Outgoing {
  topic: string;
  /** A frame (codec.ts) of `count` messages. */
  value: Buffer;
  count: number;
}

const MAX_BACKOFF_MS = 10_000;
/** Frames per produce request, and bytes (a frame is at most MAX_FRAME_BYTES; one always goes). */
const BATCH = 1_000;
const BATCH_BYTES = 4 * 1024 * 1024;

export class KafkaBus extends RedisBus {
  override readonly routesInOrder = false; // frames go over Kafka, routes over Redis
  private readonly kafka: Kafka;
  private readonly producer: Producer;
  private consumer: Consumer | undefined;
  private readonly prefix: string;
  private readonly bufferSize: number;
  private readonly logLine: (line: string) => void;
  private queue: Outgoing[] = [];
  /** Messages in `queue` (the buffer's bound counts messages, not frames). */
  private queued = 0;
  private pumping = false;
  private producerConnected = false;
  private stopping = false;
  private flushUntil = Infinity;
  private started = false;
  /** Per topic, the offset of the last frame Kafka took from this node (named in its leave). */
  private readonly lastSent = new Map<string, number>();
  /** Per topic read, the offset after the last record handed over. */
  private readonly readTo = new Map<string, number>();
  /** Offset of the broadcast topic when this run joined: what came before is in Redis already. */
  private broadcastFrom: number | undefined;
  private full = false;
  /** undefined until the first attempt: only a change is logged. */
  private sendUp: boolean | undefined;
  private readUp: boolean | undefined;
  /** Messages sent to Kafka, dropped (buffer full, or refused by Kafka for good), received. */
  sent = 0;
  dropped = 0;
  received = 0;
  /** Records of this node's topic not read yet, as of the last batch read. */
  lag = 0;
  /** Called on each change of `sending` or `reading` (kafka_ops.ts publishes it on $SYS). */
  onChange: (() => void) | undefined = undefined;

  constructor(private readonly k: KafkaBusOptions) {
    super(k);
    this.prefix = k.topicPrefix ?? "mqttx.cluster.";
    this.bufferSize = k.bufferSize ?? 100_000;
    this.logLine = k.log ?? (() => {});
    this.kafka = new Kafka({
      ...k.kafka,
      logLevel: logLevel.NOTHING, // one line per state change, logged here
      connectionTimeout: 3_000,
      retry: { retries: 2, initialRetryTime: 100, maxRetryTime: 1_000 },
    });
    // Not idempotent (it hangs on Bun, and the mock cluster has no controller for it): one
    // request at a time keeps the order instead.
    this.producer = this.kafka.producer({
      maxInFlightRequests: 1,
      idempotent: false,
      allowAutoTopicCreation: true,
    });
  }

  /** Sending over Kafka works ("up"), does not ("down"), or nothing was sent yet. */
  get sending(): "up" | "down" | "connecting" {
    return this.sendUp === undefined ? "connecting" : this.sendUp ? "up" : "down";
  }

  /** This node's consumer group is joined ("joined"), lost ("down"), or not joined yet. */
  get reading(): "joined" | "down" | "connecting" {
    return this.readUp === undefined ? "connecting" : this.readUp ? "joined" : "down";
  }

  /** Messages waiting in the send buffer. */
  get buffered(): number {
    return this.queued;
  }

  /** This node's topic (and consumer group). */
  topicOf(node: NodeId): string {
    return this.prefix + "node." + node;
  }

  get broadcastTopic(): string {
    return this.prefix + "all";
  }

  protected override async listen(): Promise<void> {
    // Mark where this run joins the broadcasts (Kafka down: marked when it is back; the broker
    // starts meanwhile and serves its own clients).
    await Promise.race([this.createTopics().catch(() => {}), sleep(3_000)]);
    if (!this.k.holdUntilReady) this.ready();
  }

  ready(): void {
    if (this.started || this.stopping) return;
    this.started = true;
    void this.consume();
  }

  /** One frame of this turn's messages to `to` (undefined: all): one Kafka record. */
  protected override sendFrame(to: NodeId | undefined, frame: Uint8Array, count: number): void {
    this.enqueue(to === undefined ? this.broadcastTopic : this.topicOf(to), frame, count);
  }

  override async leave(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    this.frames.flush();
    // Stop reading first (commits what was handed over), then give what we owe others 2 s.
    await this.consumer?.disconnect().catch(() => {});
    this.flushUntil = Date.now() + 2_000;
    while (this.queue.length > 0 && Date.now() < this.flushUntil) await sleep(20);
    if (this.queue.length > 0) {
      this.logLine(`cluster: leaving with ${this.queued} messages not sent over Kafka`);
    }
    await super.leave();
    await this.producer.disconnect().catch(() => {});
  }

  protected override leaveNote(): Record<string, unknown> {
    return { k: Object.fromEntries(this.lastSent) };
  }

  /** Handed on once this node has read the last frames `node` sent it (a node timeout at most). */
  protected override left(node: NodeId, note: Record<string, unknown>): void {
    const last = (note.k ?? {}) as Record<string, number>;
    const owed = () =>
      [this.topicOf(this.nodeId), this.broadcastTopic].some((t) =>
        typeof last[t] === "number" && (this.readTo.get(t) ?? 0) <= last[t]
      );
    if (!owed()) return super.left(node, note);
    const until = Date.now() + this.k.nodeTimeout;
    void (async () => {
      while (owed() && !this.stopping && Date.now() < until) await sleep(10);
      super.left(node, note);
    })();
  }

  /** Stop as a killed process would (tests): nothing more sent, read or committed. */
  override abandon(): void {
    this.stopping = true;
    this.flushUntil = 0;
    this.queue = [];
    this.queued = 0;
    super.abandon();
    // A crashed process does not commit; disconnecting a stopped consumer commits nothing new.
    void this.consumer?.stop().then(() => this.consumer?.disconnect()).catch(() => {});
    void this.producer.disconnect().catch(() => {});
  }

  /** The heir of dead `node` reads what waits unread in its topic (kafka_drain.ts). */
  async drain(
    node: NodeId,
    take: (from: NodeId, msg: BusMessage) => void,
  ): Promise<{ read: number; complete: boolean }> {
    let read = 0;
    this.heirs.reading(node); // (a long takeover before it must not let the lock lapse now)
    const r = await drainTopic(this.kafka, {
      group: this.topicOf(node),
      topic: this.topicOf(node),
      // The others stop sending to it about a heartbeat after this node saw it dead.
      quietMs: Math.max(1_000, 3 * this.k.heartbeatInterval),
      maxMs: 60_000 + this.k.nodeTimeout,
      stopping: () => this.stopping,
      holds: () => this.heirs.holds(node),
      take: (value) => {
        const d = decodeBusFrame(value);
        if (!d) return;
        read += d.msgs.length;
        for (const msg of d.msgs) take(d.from, msg);
      },
    });
    return { read, complete: r.complete };
  }

  // ---- sending

  private enqueue(topic: string, frame: Uint8Array, count: number): void {
    if (this.stopping && this.flushUntil === 0) return;
    if (this.queued + count > this.bufferSize) {
      this.dropped += count;
      if (!this.full) {
        this.full = true;
        this.logLine(
          `cluster: Kafka send buffer full (${this.bufferSize} messages), dropping new ones`,
        );
      }
      return;
    }
    this.queue.push({ topic, value: bytes(frame), count });
    this.queued += count;
    if (!this.pumping) {
      this.pumping = true;
      queueMicrotask(() => void this.pump());
    }
  }

  /** Send until the buffer is empty, one request at a time, backing off while Kafka fails. */
  private async pump(): Promise<void> {
    let backoff = 100;
    try {
      while (this.queue.length > 0) {
        if (Date.now() >= this.flushUntil) return; // left: what is still here is lost (logged)
        let n = 0, size = 0;
        while (n < this.queue.length && n < BATCH) {
          size += this.queue[n].value.length;
          if (n > 0 && size > BATCH_BYTES) break;
          n++;
        }
        const batch = this.queue.slice(0, n);
        try {
          if (!this.producerConnected) {
            await this.producer.connect();
            this.producerConnected = true;
          }
          const topics = byTopic(batch);
          const taken = await this.producer.sendBatch({ topicMessages: topics, acks: -1 });
          for (const r of taken) {
            const n = topics.find((t) => t.topic === r.topicName)?.messages.length ?? 0;
            if (r.baseOffset !== undefined) {
              this.lastSent.set(r.topicName, Number(r.baseOffset) + n - 1);
            }
          }
          this.taken(batch);
          this.sent += countOf(batch);
          backoff = 100;
          this.sendState(true);
        } catch (e) {
          if (refusedForGood(e)) {
            // e.g. larger than Kafka's max.message.bytes: retrying cannot help.
            this.taken(batch);
            this.dropped += countOf(batch);
            this.logLine(`cluster: Kafka refused ${countOf(batch)} messages: ${describe(e)}`);
            continue;
          }
          this.producerConnected = false;
          this.sendState(false, e);
          const left = this.flushUntil - Date.now();
          if (left <= 0) return;
          await sleep(Math.min(backoff, left));
          backoff = Math.min(backoff * 2, MAX_BACKOFF_MS);
        }
        if (this.full && this.queued < this.bufferSize) {
          this.full = false;
          this.logLine(`cluster: Kafka send buffer has room again (${this.dropped} dropped)`);
        }
      }
    } finally {
      this.pumping = false;
    }
  }

  /** The first `batch.length` frames left the buffer (sent, or refused for good). */
  private taken(batch: Outgoing[]): void {
    this.queue.splice(0, batch.length);
    this.queued -= countOf(batch);
  }

  private sendState(up: boolean, e?: unknown): void {
    if (this.sendUp === up) return;
    const first = this.sendUp === undefined;
    this.sendUp = up;
    this.onChange?.();
    if (!up) {
      this.logLine(
        `cluster: cannot send over Kafka (${describe(e)}); ` +
          `holding up to ${this.bufferSize} messages, retrying`,
      );
    } else if (!first) {
      this.logLine(`cluster: sending over Kafka again (${this.queued} waiting)`);
    }
  }

  // ---- reading

  /** Join this node's group and read its topic and the broadcasts; retry with backoff. */
  private async consume(): Promise<void> {
    let backoff = 200;
    while (!this.stopping) {
      const consumer = this.consumer = this.kafka.consumer({
        groupId: this.topicOf(this.nodeId),
        // The group has one member; after a crash its successor waits for this to join.
        sessionTimeout: 8_000,
        rebalanceTimeout: 8_000,
        heartbeatInterval: 1_000,
        maxWaitTimeInMs: 100,
        allowAutoTopicCreation: true,
        retry: { retries: 3, initialRetryTime: 200, maxRetryTime: 2_000 },
      });
      const crashed = new Promise<unknown>((resolve) =>
        consumer.on(consumer.events.CRASH, (ev) => {
          this.readState(false, ev.payload.error); // kafkajs restarts, or we do (below)
          if (!ev.payload.restart) resolve(ev.payload.error);
        })
      );
      consumer.on(consumer.events.GROUP_JOIN, () => this.readState(true));
      try {
        await this.createTopics();
        await consumer.connect();
        await consumer.subscribe({ topics: [this.topicOf(this.nodeId)], fromBeginning: true });
        await consumer.subscribe({ topics: [this.broadcastTopic], fromBeginning: false });
        const from = this.broadcastFrom ?? 0;
        await consumer.run({
          eachBatch: async ({ batch, resolveOffset, heartbeat, isRunning, isStale }) => {
            const skip = batch.topic === this.broadcastTopic ? from : 0;
            for (const m of batch.messages) {
              if (!isRunning() || isStale()) return;
              if (m.value && Number(m.offset) >= skip) this.receive(m.value);
              resolveOffset(m.offset);
              this.readTo.set(batch.topic, Number(m.offset) + 1);
            }
            if (batch.topic !== this.broadcastTopic) {
              this.lag = Math.max(0, Number(batch.offsetLag()));
            }
            await heartbeat();
          },
        });
        consumer.seek({ topic: this.broadcastTopic, partition: 0, offset: String(from) });
        // Running: kafkajs reconnects by itself; a crash it does not restart from comes here.
        await crashed;
        if (this.stopping) return;
        backoff = 200;
      } catch (e) {
        if (this.stopping) return;
        this.readState(false, e);
      }
      await consumer.disconnect().catch(() => {});
      await sleep(backoff);
      backoff = Math.min(backoff * 2, MAX_BACKOFF_MS);
    }
  }

  /**
   * A group assigns only the topics that exist when it joins: make both exist first. An empty
   * record (skipped when read) creates them where Kafka creates topics on first use (its
   * default; otherwise create them beforehand, README).
   */
  private async createTopics(): Promise<void> {
    if (!this.producerConnected) {
      await this.producer.connect();
      this.producerConnected = true;
    }
    const sent = await this.producer.sendBatch({
      topicMessages: [this.topicOf(this.nodeId), this.broadcastTopic].map((topic) => ({
        topic,
        messages: [{ value: null, partition: 0 }],
      })),
      acks: -1,
    });
    if (this.sendUp === undefined) this.sendState(true); // Kafka takes our records
    const mark = sent.find((r) => r.topicName === this.broadcastTopic)?.baseOffset;
    if (this.broadcastFrom === undefined && mark !== undefined) this.broadcastFrom = Number(mark);
  }

  private receive(value: Buffer): void {
    const d = decodeBusFrame(value);
    if (!d || d.from === this.nodeId) return; // our own broadcast
    this.received += d.msgs.length;
    for (const msg of d.msgs) this.handlers?.message(d.from, msg);
  }

  private readState(up: boolean, e?: unknown): void {
    if (this.readUp === up || this.stopping) return;
    this.readUp = up;
    this.onChange?.();
    this.logLine(
      up
        ? `cluster: reading from Kafka (group ${this.topicOf(this.nodeId)} joined)`
        : `cluster: cannot read from Kafka (${describe(e)}); retrying`,
    );
  }
}

/** Per topic, in order; always partition 0, so one node's messages are one ordered log. */
function byTopic(batch: Outgoing[]) {
  const out = new Map<string, { value: Buffer; partition: number }[]>();
  for (const r of batch) {
    const list = out.get(r.topic);
    const m = { value: r.value, partition: 0 };
    if (list) list.push(m);
    else out.set(r.topic, [m]);
  }
  return [...out].map(([topic, messages]) => ({ topic, messages }));
}

const countOf = (batch: Outgoing[]) => batch.reduce((n, o) => n + o.count, 0);

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
