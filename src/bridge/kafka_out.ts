/**
 * MQTT → Kafka: a bounded buffer of records, sent in batches (size, linger)
 * one produce request at a time, so records keep their order per key and a
 * failed batch is retried as it was. Kafka slow or down: records wait, up to
 * `bufferSize`; past it new ones are dropped and counted. With
 * `ackAfterKafka` a QoS 1/2 message's PUBACK/PUBREC waits for Kafka's
 * acknowledgement (the persistPublish hook's promise).
 */
import { Buffer } from "node:buffer";
import { setImmediate } from "node:timers";
import type { Message as KafkaMessage, Producer, TopicMessages } from "kafkajs";
import type { Message } from "../broker/message.ts";
import { escapeForLog } from "../log/escape.ts";
import { TopicRoutes } from "./kafka_names.ts";

export interface KafkaOutOptions {
  topics: { topic: string; kafkaTopic?: string }[];
  key: "client-id" | "topic";
  batchSize: number;
  lingerMs: number;
  /** kafkajs CompressionTypes value (0 none, 1 gzip). */
  compression: number;
  /** -1 all, 1 leader, 0 none. */
  acks: number;
  bufferSize: number;
  ackAfterKafka: boolean;
  log: (line: string) => void;
  /** Called after every state change (for $SYS). */
  onChange?: () => void;
}

interface OutRecord {
  topic: string;
  message: KafkaMessage;
  resolve?: () => void;
  reject?: (e: Error) => void;
}

export type LinkState = "connecting" | "up" | "down";

const MAX_BACKOFF_MS = 10_000;
/** A yield to I/O that takes longer means the event loop has MQTT work waiting. */
const BUSY_MS = 1;
/** At most this many yields in a row before a batch goes anyway (bounds the added latency). */
const MAX_YIELDS = 2000;

export class KafkaOut {
  readonly routes: TopicRoutes;
  private buffer: OutRecord[] = [];
  private sending = false;
  private stopped = false;
  /** Set by stop(): when the shutdown flush gives up. */
  private deadline = Infinity;
  private linger: ReturnType<typeof setTimeout> | undefined;
  private connected = false;
  private dropping = false;
  state: LinkState = "connecting";
  /** Records Kafka acknowledged. */
  sent = 0;
  /** Records dropped because the buffer was full. */
  dropped = 0;
  /** Records Kafka refused for good (not retriable), or not sent by the end of shutdown. */
  failed = 0;

  constructor(private readonly producer: Producer, private readonly o: KafkaOutOptions) {
    this.routes = new TopicRoutes(
      o.topics.map((t) => ({ filter: t.topic, kafkaTopic: t.kafkaTopic })),
    );
  }

  get buffered(): number {
    return this.buffer.length;
  }

  /** The persistPublish hook: queue a bridged message; with ack-after-kafka, a promise for QoS > 0. */
  take(m: Message): void | Promise<void> {
    const topic = this.routes.kafkaTopic(m.topic);
    if (topic === undefined) return;
    const hold = this.o.ackAfterKafka && m.qos > 0;
    if (this.buffer.length >= this.o.bufferSize || this.stopped) {
      this.dropped++;
      if (!this.dropping) {
        this.dropping = true;
        this.o.log(
          this.stopped
            ? "kafka bridge: shutting down, dropping new records"
            : `kafka bridge: buffer full (${this.o.bufferSize} records), dropping new ones`,
        );
        this.o.onChange?.();
      }
      if (hold) return Promise.reject(new Error("Kafka bridge buffer full"));
      return;
    }
    const record: OutRecord = { topic, message: this.record(m) };
    this.buffer.push(record);
    this.schedule();
    if (!hold) return;
    return new Promise<void>((resolve, reject) => {
      record.resolve = resolve;
      record.reject = reject;
    });
  }

  private record(m: Message): KafkaMessage {
    const headers: Record<string, string | Buffer | (string | Buffer)[]> = {
      "mqtt.topic": m.topic,
      "mqtt.qos": String(m.qos),
      "mqtt.retain": String(m.retain),
    };
    if (m.from !== undefined) headers["mqtt.client-id"] = m.from;
    const props = m.properties;
    if (props?.contentType !== undefined) headers["mqtt.content-type"] = props.contentType;
    for (const [name, value] of props?.userProperties ?? []) {
      const had = headers[name];
      headers[name] = had === undefined
        ? value
        : Array.isArray(had)
        ? [...had, value]
        : [had, value];
    }
    return {
      key: this.o.key === "topic" ? m.topic : (m.from ?? ""),
      value: Buffer.from(m.payload), // a copy: the payload may be a view into a socket chunk
      headers,
    };
  }

  private schedule(): void {
    if (this.sending) return; // the pump takes it after the current request
    if (this.buffer.length >= this.o.batchSize) {
      if (this.linger) clearTimeout(this.linger), (this.linger = undefined);
      void this.pump();
    } else if (!this.linger) {
      this.linger = setTimeout(() => {
        this.linger = undefined;
        void this.pump();
      }, this.o.lingerMs);
    }
  }

  /** Send batches until the buffer is empty; one request at a time; back off while Kafka fails. */
  private async pump(): Promise<void> {
    if (this.sending) return;
    this.sending = true;
    let backoff = 100;
    try {
      while (this.buffer.length > 0) {
        await this.idleMoment();
        const batch = this.buffer.slice(0, this.o.batchSize);
        try {
          if (!this.connected) {
            await this.producer.connect();
            this.connected = true;
          }
          await this.producer.sendBatch({
            topicMessages: byTopic(batch),
            acks: this.o.acks,
            compression: this.o.compression,
          });
          this.buffer.splice(0, batch.length);
          this.sent += batch.length;
          for (const r of batch) r.resolve?.();
          backoff = 100;
          this.setState("up");
        } catch (e) {
          if (refusedForGood(e)) {
            // Kafka refused these records for good (e.g. too large): retrying cannot help.
            this.buffer.splice(0, batch.length);
            this.failed += batch.length;
            for (const r of batch) r.reject?.(e as Error);
            this.o.log(`kafka bridge: ${batch.length} records refused by Kafka: ${describe(e)}`);
            continue;
          }
          this.setState("down", e);
          const left = this.deadline - Date.now();
          if (left <= 0) return; // shutting down, out of time
          await sleep(Math.min(backoff, left));
          backoff = Math.min(backoff * 2, MAX_BACKOFF_MS);
        }
        if (this.dropping && this.buffer.length < this.o.bufferSize) {
          this.dropping = false;
          this.o.log(`kafka bridge: buffer has room again (${this.dropped} dropped so far)`);
          this.o.onChange?.();
        }
      }
    } finally {
      this.sending = false;
    }
  }

  /**
   * Socket input first: kafkajs encodes a batch on the broker's thread (milliseconds), and MQTT
   * clients must not wait behind it. Yield to pending I/O; while that keeps the event loop busy
   * (a yield takes over BUSY_MS) and the buffer is under half full, keep yielding: the buffer
   * absorbs the burst and Kafka catches up when the loop has time. Past half full, send anyway.
   */
  private async idleMoment(): Promise<void> {
    for (let i = 0; i < MAX_YIELDS; i++) {
      const t0 = performance.now();
      await yieldToIo();
      if (performance.now() - t0 < BUSY_MS || this.buffer.length >= this.o.bufferSize / 2) return;
      if (this.stopped) return; // shutdown: the flush has a deadline
    }
  }

  private setState(state: LinkState, e?: unknown): void {
    if (this.state === state) return;
    const was = this.state;
    this.state = state;
    if (state === "down") {
      this.connected = false;
      this.o.log(
        `kafka bridge: Kafka unreachable (${
          describe(e)
        }); buffering up to ${this.o.bufferSize} records, retrying`,
      );
    } else if (was === "down") {
      this.o.log(
        `kafka bridge: Kafka reachable again; ${this.buffer.length} records still buffered`,
      );
    } else {
      this.o.log("kafka bridge: connected to Kafka");
    }
    this.o.onChange?.();
  }

  /**
   * Shutdown: take no more, give the buffer until `limitMs` to reach Kafka,
   * then count what is left as failed (its held acknowledgements are refused).
   */
  async stop(limitMs: number): Promise<void> {
    this.stopped = true;
    if (this.linger) clearTimeout(this.linger), (this.linger = undefined);
    const deadline = this.deadline = Date.now() + limitMs;
    if (this.buffer.length > 0 && !this.sending) void this.pump();
    while (this.buffer.length > 0 && Date.now() < deadline) await sleep(20);
    const left = this.buffer.splice(0);
    if (left.length > 0) {
      this.failed += left.length;
      const e = new Error("shutdown before Kafka acknowledged");
      for (const r of left) r.reject?.(e);
      this.o.log(
        `kafka bridge: shutdown after ${limitMs} ms with ${left.length} records not sent (lost)`,
      );
    }
    try {
      await this.producer.disconnect();
    } catch { /* already gone */ }
  }
}

function byTopic(batch: OutRecord[]): TopicMessages[] {
  const out = new Map<string, KafkaMessage[]>();
  for (const r of batch) {
    const list = out.get(r.topic);
    if (list) list.push(r.message);
    else out.set(r.topic, [r.message]);
  }
  return [...out].map(([topic, messages]) => ({ topic, messages }));
}

/**
 * A Kafka protocol error that retrying cannot fix (record too large, topic not
 * authorized, ...), possibly wrapped by kafkajs's retrier. Connection errors and
 * exhausted retries of retriable errors are not: those records wait for Kafka.
 */
export function refusedForGood(e: unknown): boolean {
  for (
    let x = e as KafkaError | undefined, i = 0;
    x && i < 5;
    x = x.originalError ?? x.cause, i++
  ) {
    if (x.name === "KafkaJSProtocolError" && x.retriable === false) return true;
  }
  return false;
}

interface KafkaError {
  name?: string;
  retriable?: boolean;
  originalError?: KafkaError;
  cause?: KafkaError;
}

export function describe(e: unknown): string {
  return escapeForLog(e instanceof Error ? `${e.name}: ${e.message}` : String(e));
}

const yieldToIo = () => new Promise<void>((r) => setImmediate(r));

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
