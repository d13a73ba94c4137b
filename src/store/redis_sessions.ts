/**
 * Persistent sessions in the Redis store (src/store/redis.ts): one Lua script
 * call per batch (src/store/redis_scripts.ts). In a cluster each client's
 * changes are fenced: the script writes them only while this node is the
 * client's writer (`fence`), and reports the clients it refused.
 */
import { Buffer } from "node:buffer";
import { byMessageId } from "./ids.ts";
import {
  adjustRefs,
  type Command,
  deleteSession,
  fence,
  fenceEnd,
  removeEntry,
  storeMessage,
} from "./redis_scripts.ts";
import {
  decodeDelivery,
  decodeInflight,
  decodeStoredMessage,
  decodeSubscription,
  encodeDelivery,
  encodeMessageFields,
  encodeSubscription,
} from "./codec.ts";
import { decodeMeta, encodeMeta, ownBytes } from "./redis_codec.ts";
import type { RedisStore } from "./redis.ts";
import {
  FencedWriteError,
  type SessionBatch,
  type SessionChange,
  type SessionStore,
  type StoredMessage,
  type StoredSession,
  type StoredState,
} from "./types.ts";

/** Persistent sessions in Redis; see src/store/redis_codec.ts for the key layout. */
export class RedisSessionStore implements SessionStore {
  /**
   * Set on a cluster node: each client's changes are written only while the
   * `writers` hash names this node (`want(clientId)`: "epoch node", or " node"
   * for any epoch); an absent entry lets them through (no one took it over).
   */
  fence: { writers: string; want(clientId: string): string } | undefined = undefined;
  /**
   * Told which clients' changes a fence refused (their session belongs to another node), and
   * per client the ids of the messages those changes delivered to it (now kept nowhere).
   */
  onFenced:
    | ((clientIds: string[], lost: ReadonlyMap<string, ReadonlySet<string>>) => void)
    | undefined = undefined;

  constructor(private readonly redis: RedisStore) {}

  async write(batch: SessionBatch): Promise<void> {
    const keys = this.redis.keys;
    const adjust = (adds: Map<string, number>): Command =>
      adjustRefs([...adds.keys()].map((id) => keys.message(id)), [...adds.values()]);
    // Order: the messages, the references the batch adds, then the changes
    // (whose removals drop references at once), then a sweep of carried
    // messages nothing references. A removal never meets a count the batch
    // has yet to add. Fenced, each client's references go with its changes,
    // so a refused client adds none.
    const commands: Command[] = [];
    const payloads: Uint8Array[] = [];
    let offset = 0;
    for (const m of batch.messages) {
      const length = m.payload.byteLength;
      commands.push(storeMessage(keys.message(m.id), encodeMessageFields(m), offset, length));
      payloads.push(m.payload);
      offset += length;
    }
    const fenced = this.fence;
    if (!fenced) {
      const adds = new Map<string, number>();
      for (const changes of batch.changes.values()) referencesAdded(changes, adds);
      if (adds.size > 0) commands.push(adjust(adds));
    }
    for (const [clientId, changes] of batch.changes) {
      if (fenced) {
        commands.push(fence(fenced.writers, clientId, fenced.want(clientId)));
        const adds = referencesAdded(changes, new Map());
        if (adds.size > 0) commands.push(adjust(adds));
      }
      let lastPacketId: number | undefined;
      for (const c of changes) {
        this.commandsFor(clientId, c, commands);
        if (c.kind === "send") lastPacketId = c.inflight.packetId;
        else if (c.kind === "delete") lastPacketId = undefined;
      }
      // One write of the last packet id per client and batch, however many sends.
      if (lastPacketId !== undefined) {
        commands.push(["SET", keys.packetId(clientId), String(lastPacketId)]);
      }
    }
    if (fenced) commands.push(fenceEnd);
    if (batch.messages.length > 0) {
      commands.push(adjust(new Map(batch.messages.map((m) => [m.id, 0]))));
    }
    // Riders run in the same script (both or neither); not on a fenced node, where the fence
    // may refuse the changes they belong with (their writers apply them on their own then).
    const riders = fenced ? [] : batch.riders?.filter((r) => r.redis) ?? [];
    for (const r of riders) for (const c of r.redis!) commands.push([...c]);
    const refused = await this.redis.exec(commands, Buffer.concat(payloads, offset));
    for (const r of riders) r.applied = true;
    if (refused.length === 0) return;
    this.onFenced?.(refused, deliveredTo(batch, refused));
    // Acknowledged means kept: a refused client's new deliveries or inbound QoS 2
    // ids are not stored, so the batch fails and the publishers are not acknowledged
    // (they resend, and the message is routed to the session's new owner).
    const lost = refused.filter((id) => batch.changes.get(id)!.some(awaitsAcknowledgement));
    if (lost.length > 0) {
      throw new FencedWriteError(lost);
    }
  }

  async load(): Promise<StoredState> {
    const keys = this.redis.keys;
    return this.loadSessions(
      (await this.redis.scan(keys.sessionPattern())).map((k) => keys.clientIdOf(k)),
    );
  }

  async loadSessions(clientIds: readonly string[]): Promise<StoredState> {
    const keys = this.redis.keys;
    const sessions: StoredSession[] = [];
    const wanted = new Set<string>();
    for (let i = 0; i < clientIds.length; i += 200) {
      const chunk = clientIds.slice(i, i + 200);
      const replies = await this.redis.read(chunk.flatMap((id) => [
        ["HGETALL", keys.session(id)],
        ["HGETALL", keys.subscriptions(id)],
        ["HGETALL", keys.queue(id)],
        ["HGETALL", keys.inflight(id)],
        ["SMEMBERS", keys.released(id)],
        ["SMEMBERS", keys.incoming(id)],
        ["GET", keys.packetId(id)],
      ]));
      chunk.forEach((_id, j) => {
        const [meta, subs, queue, inflight, released, incoming, lastId] = replies.slice(
          j * 7,
          j * 7 + 7,
        ) as [
          Record<string, Buffer>,
          Record<string, Buffer>,
          Record<string, Buffer>,
          Record<string, Buffer>,
          Buffer[],
          Buffer[],
          Buffer | null,
        ];
        if (meta.c === undefined) return;
        const rel = new Set(released.map((b) => Number(b.toString())));
        const s: StoredSession = {
          ...decodeMeta(meta),
          subscriptions: Object.values(subs).map((v) => decodeSubscription(v.toString())),
          queue: Object.entries(queue)
            .map(([id, v]) => decodeDelivery(id, v.toString()))
            .sort(byMessageId),
          inflight: Object.entries(inflight)
            .map(([pid, v]) => decodeInflight(Number(pid), v.toString(), rel.has(Number(pid))))
            .sort(byMessageId),
          incomingQos2: incoming.map((b) => Number(b.toString())),
          lastPacketId: lastId ? Number(lastId.toString()) : 0,
        };
        for (const d of s.queue) wanted.add(d.messageId);
        for (const d of s.inflight) wanted.add(d.messageId);
        sessions.push(s);
      });
    }
    const messages = new Map<string, StoredMessage>();
    const ids = [...wanted];
    for (let i = 0; i < ids.length; i += 500) {
      const chunk = ids.slice(i, i + 500);
      const hashes = await this.redis.read(
        chunk.map((id) => ["HGETALL", keys.message(id)]),
      ) as Record<
        string,
        Buffer
      >[];
      hashes.forEach((h, j) => {
        if (h.m !== undefined) {
          messages.set(chunk[j], decodeStoredMessage(chunk[j], h.m.toString(), ownBytes(h.p)));
        }
      });
    }
    return { sessions, messages };
  }

  close(): Promise<void> {
    return this.redis.close();
  }

  /** The commands of one change (reference additions are counted by `write`). */
  private commandsFor(clientId: string, c: SessionChange, out: Command[]): void {
    const keys = this.redis.keys;
    switch (c.kind) {
      case "meta": {
        const key = keys.session(clientId);
        out.push(["DEL", key], ["HSET", key, ...encodeMeta(c.meta)]);
        break;
      }
      case "subscribe":
        out.push(["HSET", keys.subscriptions(clientId), c.sub.filter, encodeSubscription(c.sub)]);
        break;
      case "unsubscribe":
        out.push(["HDEL", keys.subscriptions(clientId), c.filter]);
        break;
      case "enqueue":
        out.push([
          "HSET",
          keys.queue(clientId),
          c.delivery.messageId,
          encodeDelivery(c.delivery, false),
        ]);
        break;
      case "send": {
        const f = c.inflight;
        if (c.fromQueue) out.push(["HDEL", keys.queue(clientId), f.messageId]);
        out.push(["HSET", keys.inflight(clientId), String(f.packetId), encodeDelivery(f, true)]);
        // The released set loses an id when its delivery completes, before the id is reused.
        if (f.released) out.push(["SADD", keys.released(clientId), String(f.packetId)]);
        break;
      }
      case "release":
        out.push(["SADD", keys.released(clientId), String(c.packetId)]);
        break;
      case "complete":
        out.push(removeEntry(
          keys.inflight(clientId),
          keys.released(clientId),
          String(c.packetId),
          keys.message(c.messageId),
        ));
        break;
      case "drop":
        out.push(removeEntry(keys.queue(clientId), "", c.messageId, keys.message(c.messageId)));
        break;
      case "incoming":
        out.push([c.add ? "SADD" : "SREM", keys.incoming(clientId), String(c.packetId)]);
        break;
      case "delete": {
        const all = keys.allOf(clientId);
        out.push(deleteSession(keys.message(""), all));
        break;
      }
    }
  }
}

/** Add to `adds` the message references `changes` take (enqueued, or sent without a queue entry). */
function referencesAdded(
  changes: readonly SessionChange[],
  adds: Map<string, number>,
): Map<string, number> {
  for (const c of changes) {
    const id = c.kind === "enqueue"
      ? c.delivery.messageId
      : c.kind === "send" && !c.fromQueue
      ? c.inflight.messageId
      : undefined;
    if (id !== undefined) adds.set(id, (adds.get(id) ?? 0) + 1);
  }
  return adds;
}

/** Per client of `clientIds`, the ids of the messages its changes in `batch` delivered to it. */
function deliveredTo(
  batch: SessionBatch,
  clientIds: readonly string[],
): Map<string, Set<string>> {
  const out = new Map<string, Set<string>>();
  for (const id of clientIds) {
    out.set(id, new Set(referencesAdded(batch.changes.get(id)!, new Map()).keys()));
  }
  return out;
}

/** A change some client's PUBACK/PUBREC waits for. */
function awaitsAcknowledgement(c: SessionChange): boolean {
  return c.kind === "enqueue" || c.kind === "send" || c.kind === "incoming";
}
