/** Registering a node's broker-id in Redis (the liveness key `node:<id>`), for RedisBus. */
import { DuplicateNodeError, type NodeId } from "./types.ts";

// deno-lint-ignore no-explicit-any
type Client = any;

/**
 * SET `key` to `token` with a TTL of node-timeout, unless another holder keeps refreshing it
 * (a live duplicate: DuplicateNodeError). A holder that does not refresh it is a previous run
 * of this id that died: the id is taken the moment the key expires, before the others declare
 * the node dead (they wait a heartbeat longer), so a node restarted within node-timeout keeps
 * its sessions and its undelivered messages (Kafka bus).
 */
export async function acquireNodeId(
  cmd: Client,
  key: string,
  token: string,
  nodeId: NodeId,
  o: { heartbeatInterval: number; nodeTimeout: number },
): Promise<void> {
  const deadline = Date.now() + o.nodeTimeout * 2 + 1_000;
  while (Date.now() < deadline) {
    const ok = await cmd.sendCommand(["SET", key, token, "NX", "PX", String(o.nodeTimeout)]);
    if (ok) return;
    const before = Number(await cmd.sendCommand(["PTTL", key]));
    const wait = o.heartbeatInterval + 250;
    await new Promise((r) => setTimeout(r, wait));
    const after = Number(await cmd.sendCommand(["PTTL", key]));
    if (before > 0 && after > before - wait / 2) {
      throw new DuplicateNodeError(
        `broker-id ${nodeId} is already used by a live node of this cluster ` +
          `(give each node its own broker-id)`,
      );
    }
    if (after > 0) await new Promise((r) => setTimeout(r, after + 5));
  }
  throw new DuplicateNodeError(`broker-id ${nodeId}: could not register the node`);
}
