/**
 * Where a receiving node keeps the QoS 2 messages it took from other nodes
 * (qos2_resend.ts), so a later run of it still knows them: the first copy of a
 * message may be stored by one run and the publisher's resend read by the next
 * (Kafka keeps what was sent while the node was down).
 *
 * In Redis, a sorted set per broker-id (the last RECEIVED_MAX), written on the
 * session store's own connection the moment the message is taken: before the
 * session batch that stores it is even built, so Redis applies it first and a
 * run that died after storing the message had kept its id too. The
 * acknowledgement to the sender also waits for it.
 */
import type { NodeId } from "./types.ts";

/** How many ids are kept per broker-id (as many as a run keeps per sending node). */
export const RECEIVED_MAX = 100_000;
/** Trim the set once per this many additions. */
const TRIM_EVERY = 1_000;

export interface Qos2Memory {
  /** Keep that this node took QoS 2 message `id` from `node`; resolves once kept. */
  remember(node: NodeId, id: number): Promise<void>;
  /** What this broker-id's earlier runs took, oldest first. */
  recall(): Promise<[NodeId, number][]>;
}

// deno-lint-ignore no-explicit-any
type Client = any;

export class RedisQos2Memory implements Qos2Memory {
  private added = 0;

  /** `client`: the session store's connection (see above); `key`: this broker-id's set. */
  constructor(private readonly client: Client, private readonly key: string) {}

  remember(node: NodeId, id: number): Promise<void> {
    const kept = this.client.sendCommand(["ZADD", this.key, String(Date.now()), `${id} ${node}`]);
    if (++this.added % TRIM_EVERY === 0) {
      this.client.sendCommand(["ZREMRANGEBYRANK", this.key, "0", String(-RECEIVED_MAX - 1)])
        .catch(() => {});
    }
    return kept.then(() => {});
  }

  async recall(): Promise<[NodeId, number][]> {
    const members = await this.client.sendCommand(
      ["ZRANGE", this.key, String(-RECEIVED_MAX), "-1"],
    ) as { toString(): string }[];
    return members.map((m) => {
      const s = m.toString();
      const i = s.indexOf(" ");
      return [s.slice(i + 1), Number(s.slice(0, i))];
    });
  }
}
