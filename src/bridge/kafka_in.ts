/**
 * Kafka → MQTT: records of the configured Kafka topics are published through
 * the broker's LocalClient on their mapped MQTT topic. One consumer group (one
 * per cluster); a record's offset is committed only after its message was
 * routed and stored for the persistent sessions it went to (kafkajs commits
 * what eachMessage resolved): at least once.
 */
import type { Consumer } from "kafkajs";
import type { LocalClient } from "../broker/local_client.ts";
import type { QoS } from "../mqtt/packet.ts";
import { escapeForLog } from "../log/escape.ts";
import { mqttTopicFor } from "./kafka_names.ts";
import { describe } from "./kafka_out.ts";

export interface FromKafkaEntry {
  kafkaTopic: string;
  mqttTopic: string;
  qos: QoS;
  retain: boolean;
}

export type ConsumerState = "starting" | "joined" | "down" | "stopped";

export class KafkaIn {
  state: ConsumerState = "starting";
  /** Records routed to MQTT. */
  routed = 0;
  /** Records whose MQTT topic could not be made (e.g. no key for `{key}`): skipped, committed. */
  unroutable = 0;
  private stopped = false;
  private readonly byTopic: Map<string, FromKafkaEntry>;

  constructor(
    private readonly consumer: Consumer,
    entries: FromKafkaEntry[],
    private readonly local: LocalClient,
    private readonly log: (line: string) => void,
    private readonly onChange?: () => void,
  ) {
    this.byTopic = new Map(entries.map((e) => [e.kafkaTopic, e]));
    consumer.on(consumer.events.GROUP_JOIN, () => this.setState("joined"));
    consumer.on(consumer.events.CRASH, (ev) => this.setState("down", ev.payload.error));
  }

  /** Connect, subscribe and run, retrying with backoff while Kafka is unreachable. */
  async start(): Promise<void> {
    let backoff = 200;
    while (!this.stopped) {
      try {
        await this.consumer.connect();
        await this.consumer.subscribe({ topics: [...this.byTopic.keys()], fromBeginning: false });
        await this.consumer.run({
          eachMessage: async ({ topic, message }) => {
            const entry = this.byTopic.get(topic)!;
            const key = message.key?.toString() ?? "";
            const mqttTopic = message.key === null && entry.mqttTopic.includes("{key}")
              ? undefined
              : mqttTopicFor(entry.mqttTopic, topic, key);
            if (mqttTopic === undefined) {
              if (this.unroutable++ === 0) {
                this.log(
                  `kafka bridge: record on ${escapeForLog(topic)} with key ${
                    escapeForLog(JSON.stringify(key))
                  } has no valid MQTT topic; skipped (counted from now on)`,
                );
              }
              return;
            }
            const value = message.value ?? new Uint8Array(0);
            // Resolves once routed and kept (LocalClient.publish); only then may kafkajs commit.
            await this.local.publish(mqttTopic, new Uint8Array(value), {
              qos: entry.qos,
              retain: entry.retain,
            });
            this.routed++;
          },
        });
        return;
      } catch (e) {
        this.setState("down", e);
        try {
          await this.consumer.disconnect();
        } catch { /* not connected */ }
        await new Promise((r) => setTimeout(r, backoff));
        backoff = Math.min(backoff * 2, 10_000);
      }
    }
  }

  private setState(state: ConsumerState, e?: unknown): void {
    if (this.state === state || this.stopped) return;
    this.state = state;
    if (state === "joined") this.log("kafka bridge: consuming from Kafka (group joined)");
    if (state === "down") this.log(`kafka bridge: consumer failed (${describe(e)}); retrying`);
    this.onChange?.();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.state = "stopped";
    try {
      await this.consumer.disconnect();
    } catch { /* already gone */ }
  }
}
