/**
 * `/api/v1/...`: the admin API (JSON). The caller (ops.ts) has checked the
 * Bearer token already.
 *
 *   GET    /api/v1/clients?prefix=&username=&page=1&limit=100   sessions, paged
 *   GET    /api/v1/clients/{id}                                 one client
 *   DELETE /api/v1/clients/{id}      disconnect (5.0: DISCONNECT 0x98); an offline session is ended
 *   GET    /api/v1/subscriptions?clientid=&page=&limit=
 *   GET    /api/v1/retained?filter=%23&page=&limit=
 *   DELETE /api/v1/retained/{topic}  (the topic URL-encoded, or as path segments)
 *   POST   /api/v1/publish           {"topic","payload","encoding":"utf8"|"base64","qos","retain"}
 */
import { readBody } from "./read_body.ts";
import type { Broker } from "../broker/broker.ts";
import { LocalClient } from "../broker/local_client.ts";
import type { Session } from "../broker/session.ts";
import { topicFilterError, topicNameError } from "../mqtt/topic.ts";
import type { Logger } from "../log/logger.ts";
import { b64, unb64 } from "../auth/credential.ts";

const ADMINISTRATIVE_ACTION = 0x98;
const MAX_LIMIT = 1000;

export interface ApiContext {
  broker: Broker;
  logger: Logger;
}

export function apiHandler(ctx: ApiContext): (req: Request, path: string) => Promise<Response> {
  const local = new LocalClient(ctx.broker, "$mqttx-api");
  return async (req, path) => {
    const url = new URL(req.url, "http://localhost"); // Bun: relative without a Host
    const q = url.searchParams;
    const method = req.method;
    if (path === "/api/v1/clients" && method === "GET") return json(listClients(ctx.broker, q));
    if (path.startsWith("/api/v1/clients/")) {
      const id = decodePart(path.slice("/api/v1/clients/".length));
      if (id === undefined) return badRequest("malformed %-encoding in the client id");
      if (method === "GET") {
        const session = ctx.broker.sessions.get(id);
        return session ? json(clientDetail(session)) : notFound(`no client ${id}`);
      }
      if (method === "DELETE") return kick(ctx, id);
    }
    if (path === "/api/v1/subscriptions" && method === "GET") {
      return json(listSubscriptions(ctx.broker, q));
    }
    if (path === "/api/v1/retained" && method === "GET") {
      const filter = q.get("filter") ?? "#";
      const why = topicFilterError(filter);
      if (why) return badRequest(`filter ${JSON.stringify(filter)} ${why}`);
      const all = ctx.broker.store.matchRetained(filter);
      all.sort((a, b) => (a.topic < b.topic ? -1 : a.topic > b.topic ? 1 : 0));
      return json(page(q, all, (m) => ({ topic: m.topic, qos: m.qos, ...payloadJson(m.payload) })));
    }
    if (path.startsWith("/api/v1/retained/") && method === "DELETE") {
      const topic = decodePart(path.slice("/api/v1/retained/".length));
      if (topic === undefined) return badRequest("malformed %-encoding in the topic");
      const why = topicNameError(topic);
      if (why) return badRequest(`topic ${JSON.stringify(topic)} ${why}`);
      await ctx.broker.clearRetained(topic);
      ctx.logger.info("api.retained.deleted", { topic });
      return json({ deleted: topic });
    }
    if (path === "/api/v1/publish" && method === "POST") return publish(ctx, local, req);
    return json({ error: `no such endpoint: ${method} ${path}` }, 404);
  };
}

function listClients(broker: Broker, q: URLSearchParams) {
  const prefix = q.get("prefix") ?? "";
  const username = q.get("username");
  const rows: Session[] = [];
  for (const s of broker.sessions.values()) {
    if (!s.clientId.startsWith(prefix)) continue;
    if (username !== null && s.connection?.client?.username !== username) continue;
    rows.push(s);
  }
  rows.sort((a, b) => (a.clientId < b.clientId ? -1 : a.clientId > b.clientId ? 1 : 0));
  return page(q, rows, clientSummary);
}

function clientSummary(s: Session) {
  const c = s.connection;
  return {
    clientId: s.clientId,
    connected: c !== undefined && c.connected,
    username: c?.client?.username ?? null,
    address: c?.remoteAddr ?? null,
    protocolVersion: c?.version ?? null,
    subscriptions: s.subscriptions.size,
    inflight: s.inflight.size,
    queued: s.queue.length,
  };
}

function clientDetail(s: Session) {
  return {
    ...clientSummary(s),
    keepAlive: s.connection?.keepAlive ?? null,
    sessionExpiryInterval: s.expiryInterval,
    dropped: s.dropped,
    subscriptions: [...s.subscriptions.values()].map((sub) => ({
      filter: sub.filter,
      qos: sub.qos,
    })),
  };
}

function kick(ctx: ApiContext, id: string): Response {
  const session = ctx.broker.sessions.get(id);
  if (!session) return notFound(`no client ${id}`);
  const conn = session.connection;
  if (conn) {
    // 5.0 gets DISCONNECT 0x98 Administrative action; 3.x has no server DISCONNECT.
    conn.close(ADMINISTRATIVE_ACTION, "kicked by an administrator");
    ctx.logger.info("api.client.kicked", { clientId: id, address: conn.remoteAddr });
    return json({ kicked: id, connected: true });
  }
  ctx.broker.lifecycle.end(session); // offline: the session itself goes
  ctx.logger.info("api.session.ended", { clientId: id });
  return json({ kicked: id, connected: false });
}

function listSubscriptions(broker: Broker, q: URLSearchParams) {
  const clientId = q.get("clientid");
  const rows: { clientId: string; filter: string; qos: number }[] = [];
  const sessions = clientId !== null
    ? [broker.sessions.get(clientId)].filter((s) => s !== undefined)
    : broker.sessions.values();
  for (const s of sessions) {
    for (const sub of s.subscriptions.values()) {
      rows.push({ clientId: s.clientId, filter: sub.filter, qos: sub.qos });
    }
  }
  return page(q, rows, (r) => r);
}

async function publish(ctx: ApiContext, local: LocalClient, req: Request): Promise<Response> {
  // As a client's PUBLISH: no larger than max-bytes-in-message. The body is read up to what
  // such a payload can take in JSON (\u00XX escapes: 6 bytes a byte), chunked or not.
  const max = ctx.broker.options.maximumPacketSize;
  const text = await readBody(req, 6 * max + 4096);
  if (text === undefined) return tooLarge(max);
  let body: Record<string, unknown>;
  try {
    body = JSON.parse(text);
  } catch {
    return badRequest("the body must be a JSON object");
  }
  const { topic, payload = "", encoding = "utf8", qos = 0, retain = false } = body ?? {};
  if (typeof topic !== "string") return badRequest("topic (a string) is required");
  const sys = topic === "$SYS" || topic.startsWith("$SYS/");
  const why = sys ? "is the broker's own ($SYS)" : topicNameError(topic);
  if (why) return badRequest(`topic ${JSON.stringify(topic)} ${why}`);
  if (qos !== 0 && qos !== 1 && qos !== 2) return badRequest("qos must be 0, 1 or 2");
  if (typeof retain !== "boolean") return badRequest("retain must be true or false");
  if (typeof payload !== "string") return badRequest("payload must be a string");
  let bytes: Uint8Array;
  if (encoding === "base64") {
    const decoded = unb64(payload);
    if (!decoded) return badRequest("payload is not valid base64");
    bytes = decoded;
  } else if (encoding === "utf8") bytes = new TextEncoder().encode(payload);
  else return badRequest('encoding must be "utf8" or "base64"');
  if (bytes.length > max) return tooLarge(max);
  const delivered = await local.publish(topic, bytes, { qos, retain });
  ctx.logger.debug("api.published", { topic, qos, retain, bytes: bytes.length });
  return json({ topic, delivered });
}

function payloadJson(payload: Uint8Array): { payload: string; encoding: "utf8" | "base64" } {
  try {
    return { payload: new TextDecoder("utf-8", { fatal: true }).decode(payload), encoding: "utf8" };
  } catch {
    return { payload: b64(payload), encoding: "base64" };
  }
}

/** `page` (1-based) and `limit` (default 100, at most 1000) of `rows`. */
function page<T, R>(q: URLSearchParams, rows: T[], map: (row: T) => R) {
  const limit = clampInt(q.get("limit"), 100, 1, MAX_LIMIT);
  const pageNo = clampInt(q.get("page"), 1, 1, Number.MAX_SAFE_INTEGER);
  const start = (pageNo - 1) * limit;
  return {
    total: rows.length,
    page: pageNo,
    limit,
    data: rows.slice(start, start + limit).map(map),
  };
}

function decodePart(s: string): string | undefined {
  try {
    return decodeURIComponent(s);
  } catch {
    return undefined;
  }
}

function clampInt(s: string | null, fallback: number, min: number, max: number): number {
  const n = s === null ? NaN : Number.parseInt(s, 10);
  return Number.isFinite(n) ? Math.min(max, Math.max(min, n)) : fallback;
}

export function json(body: unknown, status = 200): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { "content-type": "application/json; charset=utf-8", "cache-control": "no-store" },
  });
}

function badRequest(error: string): Response {
  return json({ error }, 400);
}

function notFound(error: string): Response {
  return json({ error }, 404);
}

function tooLarge(max: number): Response {
  return json({ error: `the message is larger than max-bytes-in-message (${max} bytes)` }, 413);
}
