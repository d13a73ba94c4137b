/**
 * Client ownership in Redis, for the Redis bus (redis.ts): the `owner` hash
 * (client id → "epoch node"), the `writer` hash the store's writes check (the
 * same value, once the previous owner handed over) and the `epoch` counter.
 * Each change is one script (redis_scripts.ts), so two nodes racing for a
 * client never both win.
 */
import type { Buffer } from "node:buffer";
import { CLAIM, CLAIM_FROM, COMMIT, RELEASE } from "./redis_scripts.ts";
import type { NodeId } from "./types.ts";

// deno-lint-ignore no-explicit-any
type Client = any;

/** The node of an "epoch node" value (a node id may contain spaces). */
export function ownerNode(value: string): NodeId {
  return value.slice(value.indexOf(" ") + 1);
}

export class RedisOwners {
  constructor(
    private readonly cmd: Client,
    private readonly keys: { epoch: string; owner: string; writer: string },
    private readonly nodeId: NodeId,
  ) {}

  async claim(clientId: string): Promise<{ epoch: number; previous?: NodeId }> {
    const { epoch, owner, writer } = this.keys;
    const [e, prev] = await this.cmd.sendCommand(
      ["EVAL", CLAIM, "3", epoch, owner, writer, clientId, this.nodeId],
    ) as [number, Buffer];
    const previous = ownerNode(prev.toString());
    return {
      epoch: Number(e),
      previous: previous && previous !== this.nodeId ? previous : undefined,
    };
  }

  async claimFrom(clientId: string, node: NodeId): Promise<number> {
    const { epoch, owner, writer } = this.keys;
    return Number(
      await this.cmd.sendCommand(
        ["EVAL", CLAIM_FROM, "3", epoch, owner, writer, clientId, this.nodeId, node],
      ),
    );
  }

  async commit(clientId: string, epoch: number): Promise<boolean> {
    const r = await this.cmd.sendCommand(
      ["EVAL", COMMIT, "1", this.keys.writer, clientId, String(epoch), this.nodeId],
    );
    return Number(r) === 1;
  }

  release(clientId: string, epoch: number): void {
    const { owner, writer } = this.keys;
    this.cmd.sendCommand(
      ["EVAL", RELEASE, "2", owner, writer, clientId, `${epoch} ${this.nodeId}`],
    ).catch(() => {});
  }

  /** The client ids `node` owns (an HSCAN of the owner hash). */
  async ownedBy(node: NodeId): Promise<string[]> {
    const out: string[] = [];
    let cursor = "0";
    do {
      const [next, flat] = await this.cmd.sendCommand(
        ["HSCAN", this.keys.owner, cursor, "COUNT", "1000"],
      ) as [Buffer, Buffer[]];
      cursor = next.toString();
      for (let i = 0; i + 1 < flat.length; i += 2) {
        if (ownerNode(flat[i + 1].toString()) === node) out.push(flat[i].toString());
      }
    } while (cursor !== "0");
    return out;
  }

  /** The owner node of each of `clientIds` that has one. */
  async owners(clientIds: readonly string[]): Promise<Map<string, NodeId>> {
    const out = new Map<string, NodeId>();
    for (let i = 0; i < clientIds.length; i += 500) {
      const chunk = clientIds.slice(i, i + 500);
      const r = await this.cmd.sendCommand(["HMGET", this.keys.owner, ...chunk]) as (
        | Buffer
        | null
      )[];
      r.forEach((v, j) => {
        if (v) out.set(chunk[j], ownerNode(v.toString()));
      });
    }
    return out;
  }
}
