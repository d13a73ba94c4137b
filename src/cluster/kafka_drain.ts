/**
 * Reading a dead node's Kafka topic for its heir (`cluster.type: kafka`).
 *
 * What other nodes sent to a node between its death and their noticing it
 * (node-timeout) waits in its topic, unread. Its heir joins the dead node's
 * own consumer group, so it goes on from the dead node's committed offset and
 * what it reads is committed for that group: a later run of the dead node's
 * broker-id does not read it again. It reads until it has caught up with the
 * end of the topic and nothing new came for `quietMs` (the other nodes stop
 * sending once they too see the node dead, about one heartbeat later), then
 * leaves the group. A group member of the dead run is waited out by Kafka
 * (its group session, 8 s) before the heir is assigned the partition.
 */
import type { Buffer } from "node:buffer";
import type { Consumer, Kafka } from "kafkajs";

export interface DrainOptions {
  /** The dead node's consumer group and topic (the same name). */
  group: string;
  topic: string;
  /** Read on until nothing new came for this long (ms). */
  quietMs: number;
  /** Give up after this long (ms): Kafka down, or the group never assigned the partition. */
  maxMs: number;
  /** Each record's value, in order. */
  take(value: Buffer): void;
  /** True once the bus is stopping: leave at once. */
  stopping(): boolean;
  /**
   * Whether this node is still the heir, asked before each batch. No longer (its lock lapsed
   * while it stalled): a returning run of the node may read the topic now, in the same group,
   * for sessions it has taken back; stop, committing nothing more.
   */
  holds(): Promise<boolean>;
}

export interface DrainResult {
  /** Records read (the empty marker records skipped). */
  read: number;
  /** False when it gave up before catching up (maxMs, or stopping). */
  complete: boolean;
}

export async function drainTopic(kafka: Kafka, o: DrainOptions): Promise<DrainResult> {
  const consumer: Consumer = kafka.consumer({
    groupId: o.group,
    sessionTimeout: 8_000,
    rebalanceTimeout: 8_000,
    heartbeatInterval: 1_000,
    maxWaitTimeInMs: 100,
    allowAutoTopicCreation: false,
    retry: { retries: 3, initialRetryTime: 200, maxRetryTime: 2_000 },
  });
  const admin = kafka.admin();
  const deadline = Date.now() + o.maxMs;
  let read = 0;
  let joined = false;
  /** Next offset to read, as far as this drain knows; -1 until known. */
  let position = -1;
  let lastNews = Date.now();
  /** This node stopped being the heir: nothing more is read or committed. */
  let lost = false;
  consumer.on(consumer.events.GROUP_JOIN, () => {
    joined = true;
    lastNews = Date.now();
  });
  try {
    await Promise.all([consumer.connect(), admin.connect()]);
    await consumer.subscribe({ topics: [o.topic], fromBeginning: true });
    await consumer.run({
      // Committed here, batch by batch, and only while this node is the heir (`holds`).
      autoCommit: false,
      eachBatch: async ({ batch, resolveOffset, heartbeat, isRunning, isStale }) => {
        if (lost || !(await o.holds())) return void (lost = true);
        for (const m of batch.messages) {
          if (!isRunning() || isStale()) break;
          if (m.value) {
            o.take(m.value);
            read++;
          }
          resolveOffset(m.offset);
          position = Number(m.offset) + 1;
        }
        // Asked again: lost meanwhile (a stall), the returning run reads these again (twice,
        // not never).
        if (position >= 0 && !(lost ||= !(await o.holds()))) {
          const offset = String(position);
          await consumer.commitOffsets([{
            topic: batch.topic,
            partition: batch.partition,
            offset,
          }]);
        }
        lastNews = Date.now();
        await heartbeat();
      },
    });
    let high = -1;
    while (!o.stopping() && !lost && Date.now() < deadline) {
      await sleep(250);
      if (!joined) continue;
      if (!(await o.holds())) break; // (the returning run may hold the partition: no batch comes)
      const offsets = (await admin.fetchTopicOffsets(o.topic)).find((x) => x.partition === 0);
      const end = Number(offsets?.high ?? 0);
      if (end !== high) {
        high = end;
        lastNews = Date.now();
      }
      // Nothing read yet: the group's committed offset (none: the oldest Kafka still keeps).
      if (position < 0) {
        const c = await committed(admin, o.group, o.topic);
        if (position < 0) position = c >= 0 ? c : Number(offsets?.low ?? 0); // (no batch meanwhile)
      }
      if (position >= high && Date.now() - lastNews >= o.quietMs) {
        return { read, complete: true };
      }
    }
    return { read, complete: false };
  } catch {
    return { read, complete: false };
  } finally {
    await consumer.disconnect().catch(() => {}); // (commits nothing: autoCommit is off)
    await admin.disconnect().catch(() => {});
  }
}

/** The group's committed offset of partition 0 (-1: none yet). */
async function committed(admin: ReturnType<Kafka["admin"]>, group: string, topic: string) {
  const r = await admin.fetchOffsets({ groupId: group, topics: [topic] });
  const p = r[0]?.partitions.find((x) => x.partition === 0);
  return p ? Number(p.offset) : -1;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
