/**
 * The operations endpoint's HTTP/1.1 server (metrics, health, the admin API, the dashboard) over
 * the runtime's TCP listener: a `Request` in, a `Response` out, keep-alive and pipelining.
 * Runtime-free, so both runtimes serve it through the same code.
 *
 * Why not the runtimes' own HTTP servers: Deno's has no timeouts at all (a peer that sends half a
 * request head, or nothing, holds its connection and file descriptor for good; denoland/deno#3515),
 * and Bun's only an idle timeout (a peer sending a byte every few seconds stays). A hostile
 * or broken peer of this endpoint must cost only itself, as an MQTT client does: each request head
 * must be complete within `idleTimeoutMs` of the connection opening or of the last answer, a body
 * must keep coming and be complete within `bodyTimeoutMs`, an answer must be taken within
 * WRITE_TIMEOUT_MS, and past `maxConnections` open at once a new connection is answered 503 and
 * closed.
 *
 * Answers are small (a page of the API, the metrics text, the dashboard): each is read whole and
 * sent with its length. A request body streams to the handler, which reads what it wants (the
 * API caps it); one it leaves unread ends the connection after the answer. Chunked request bodies
 * are refused (411): curl, Prometheus and browsers' fetch send a length.
 */
import type { HttpHandler, Listener, ListenOptions, TransportConn } from "../runtime/types.ts";
import { escapeForLog } from "../log/escape.ts";
import { ConnIo } from "./conn_io.ts";
import {
  answerAndEnd,
  concat,
  deadline,
  type Head,
  type HeadProgress,
  readHead,
  REASONS,
  TIMED_OUT,
} from "./http_head.ts";

export interface HttpServeOptions extends ListenOptions {
  /** ms a request head may take after the connection opened or the last answer went (10 s). */
  idleTimeoutMs?: number;
  /** Connections open at once; past it a new one gets 503 (256). */
  maxConnections?: number;
  /** ms the peer has to take an answer (30 s). */
  writeTimeoutMs?: number;
  /** ms a request body may take in all, from the end of its head (60 s). */
  bodyTimeoutMs?: number;
}

/** The runtime's TCP listener (Runtime.listen). */
export type ListenFn = (
  opts: ListenOptions,
  onConn: (conn: TransportConn) => void,
) => Promise<Listener>;

const IDLE_TIMEOUT_MS = 10_000;
const MAX_CONNECTIONS = 256;
/** An answer not taken by the peer within this is given up, with its connection. */
const WRITE_TIMEOUT_MS = 30_000;
/** A body sent a byte at a time, just inside the idle limit each, would otherwise hold on. */
const BODY_TIMEOUT_MS = 60_000;

const enc = new TextEncoder();
const CONTINUE = enc.encode("HTTP/1.1 100 Continue\r\n\r\n");

export async function serveHttp(
  listen: ListenFn,
  opts: HttpServeOptions,
  handler: HttpHandler,
): Promise<Listener> {
  const open = new Set<TransportConn>();
  const max = opts.maxConnections ?? MAX_CONNECTIONS;
  const log = opts.log ?? (() => {});
  let busyLogged = false;
  let port = opts.port;
  const listener = await listen(
    { hostname: opts.hostname, port: opts.port, log: opts.log },
    (conn) => {
      if (open.size >= max) {
        if (!busyLogged) log(`http: ${max} connections open; refusing more (503) until one ends`);
        busyLogged = true;
        const io = new ConnIo(conn);
        deadline(answerAndEnd(io, 503, "Too many connections\n"), writeMs(opts))
          .finally(() => conn.close());
        return;
      }
      busyLogged = false;
      open.add(conn);
      const ctx: ConnContext = { conn, io: new ConnIo(conn), opts, handler, log, port };
      serveConn(ctx).catch((e) => end(ctx, `http: ${e instanceof Error ? e.message : e}`))
        .finally(() => open.delete(conn));
    },
  );
  port = listener.port;
  let closing: Promise<void> | undefined;
  return {
    port: listener.port,
    close: () =>
      closing ??= listener.close().finally(() => {
        for (const conn of open) conn.close();
      }),
  };
}

interface ConnContext {
  readonly conn: TransportConn;
  readonly io: ConnIo;
  readonly opts: HttpServeOptions;
  readonly handler: HttpHandler;
  readonly log: (line: string) => void;
  readonly port: number;
  closed?: boolean;
}

/** Requests one after another until the peer or a limit ends the connection. */
async function serveConn(ctx: ConnContext): Promise<void> {
  const idleMs = ctx.opts.idleTimeoutMs ?? IDLE_TIMEOUT_MS;
  let leftover: Uint8Array = new Uint8Array(0);
  for (;;) {
    const progress: HeadProgress = { bytes: 0 };
    const head = await deadline(readHead(ctx.io, leftover, progress), idleMs);
    if (head === TIMED_OUT) {
      // A keep-alive connection with nothing asked is an HTTP connection's normal end.
      if (progress.bytes === 0) return end(ctx);
      return end(ctx, `http: no complete request within ${idleMs} ms`);
    }
    if (head === undefined) return end(ctx);
    if (head === "too-large") return refuse(ctx, 431, "Request head too large");
    if (head === "bad") return refuse(ctx, 400, "Not an HTTP/1.x request");
    if (head.headers.has("transfer-encoding")) {
      return refuse(ctx, 411, "A request body needs a Content-Length");
    }
    const length = head.headers.get("content-length") ?? "0";
    if (!/^\d{1,15}$/.test(length)) return refuse(ctx, 400, "Bad Content-Length");
    const continues = /^100-continue$/i.test(head.headers.get("expect") ?? "");
    const bodyMs = ctx.opts.bodyTimeoutMs ?? BODY_TIMEOUT_MS;
    const body = new BodyReader(ctx, head.rest, Number(length), idleMs, bodyMs, continues);
    let request: Request;
    try {
      request = toRequest(ctx, head, body);
    } catch {
      return refuse(ctx, 400, "Bad request target or Host");
    }
    let response: Response;
    try {
      response = await ctx.handler(request);
    } catch {
      if (ctx.closed) return;
      response = new Response("Internal error\n", { status: 500 });
    }
    if (ctx.closed) return;
    const keepAlive = wantsKeepAlive(head) && body.done;
    const isHead = request.method === "HEAD";
    const bytes = response.body === null || !mayHaveBody(response.status)
      ? new Uint8Array(0)
      : new Uint8Array(await response.arrayBuffer());
    const sent = await deadline(
      ctx.io.write(answerBytes(head, isHead, response, bytes, keepAlive)).then(
        () => true,
        () => false,
      ),
      writeMs(ctx.opts),
    );
    if (sent === TIMED_OUT) return end(ctx, "http: the answer was not taken in time");
    if (!sent) return end(ctx);
    if (!keepAlive) {
      await ctx.io.flush();
      return end(ctx);
    }
    leftover = body.leftover;
  }
}

function toRequest(ctx: ConnContext, head: Head, body: BodyReader): Request {
  // HTTP/1.0 health checkers send no Host: the URL still needs one (the header stays absent).
  const hostname = ctx.opts.hostname.includes(":") ? `[${ctx.opts.hostname}]` : ctx.opts.hostname;
  const host = head.headers.get("host") || `${hostname}:${ctx.port}`;
  // Origin-form ("/a", "//a" too: a path, never a host) or absolute-form; not "*".
  const target = head.target;
  let url: URL;
  if (target.startsWith("/")) url = new URL(`http://${host}${target}`);
  else if (/^https?:\/\//i.test(target)) url = new URL(target);
  else throw new Error("bad target");
  if (url.host === "") throw new Error("bad host");
  const withBody = body.length > 0 && head.method !== "GET" && head.method !== "HEAD";
  return new Request(url, {
    method: head.method,
    headers: [...head.headers],
    body: withBody ? body.stream() : undefined,
    duplex: "half",
  } as RequestInit);
}

function wantsKeepAlive(head: Head): boolean {
  const connection = head.headers.get("connection")?.toLowerCase() ?? "";
  if (head.version === "HTTP/1.0") return /\bkeep-alive\b/.test(connection);
  return !/\bclose\b/.test(connection);
}

/** 1xx, 204 and 304 answers have no body, nor a length (RFC 9110 8.6). */
function mayHaveBody(status: number): boolean {
  return status >= 200 && status !== 204 && status !== 304;
}

function answerBytes(
  head: Head,
  isHead: boolean,
  res: Response,
  body: Uint8Array,
  keepAlive: boolean,
): Uint8Array {
  const lines = [`HTTP/1.1 ${res.status} ${res.statusText || REASONS[res.status] || "Status"}`];
  for (const [name, value] of res.headers) {
    if (name === "content-length" || name === "connection" || name === "transfer-encoding") {
      continue;
    }
    lines.push(`${name}: ${value}`);
  }
  // HEAD: the length a GET would get.
  if (mayHaveBody(res.status)) lines.push(`content-length: ${body.byteLength}`);
  if (!keepAlive) lines.push("connection: close");
  else if (head.version === "HTTP/1.0") lines.push("connection: keep-alive");
  const bytes = enc.encode(lines.join("\r\n") + "\r\n\r\n");
  return isHead ? bytes : concat(bytes, body);
}

/** A request body of `length` bytes, streamed from what the head left and then the connection. */
class BodyReader {
  /** What came after the body (a pipelined request), once it is read. */
  leftover: Uint8Array = new Uint8Array(0);
  private remaining: number;
  /** When the whole body must be in (ms since the epoch). */
  private readonly endsAt: number;

  constructor(
    private readonly ctx: ConnContext,
    private first: Uint8Array,
    readonly length: number,
    private readonly idleMs: number,
    private readonly totalMs: number,
    /** The client waits for "100 Continue" before it sends the body (curl, past 1 MiB). */
    private continues: boolean,
  ) {
    this.remaining = length;
    this.endsAt = Date.now() + totalMs;
    if (length === 0) this.leftover = first;
  }

  get done(): boolean {
    return this.remaining === 0;
  }

  stream(): ReadableStream<Uint8Array> {
    return new ReadableStream<Uint8Array>({
      pull: async (controller) => {
        let chunk: Uint8Array | undefined = this.first;
        this.first = new Uint8Array(0);
        if (chunk.byteLength === 0) {
          if (this.continues) {
            this.continues = false;
            await this.ctx.io.write(CONTINUE).catch(() => {});
          }
          const left = this.endsAt - Date.now();
          const totalFirst = left <= this.idleMs; // the whole body's time runs out before a gap's
          const next = await deadline(
            this.ctx.io.read(),
            totalFirst ? Math.max(0, left) : this.idleMs,
          );
          if (next === TIMED_OUT || next === undefined) {
            const late = totalFirst
              ? `http: the request body took longer than ${this.totalMs} ms`
              : "http: the request body stopped coming";
            end(this.ctx, next === TIMED_OUT ? late : undefined);
            return controller.error(new Error("the request body ended early"));
          }
          chunk = next;
        }
        const take = Math.min(chunk.byteLength, this.remaining);
        this.remaining -= take;
        if (take < chunk.byteLength) this.leftover = chunk.slice(take);
        controller.enqueue(chunk.subarray(0, take));
        if (this.remaining === 0) controller.close();
      },
    });
  }
}

async function refuse(ctx: ConnContext, status: number, why: string): Promise<void> {
  // Bounded as every answer is: a peer that takes none must not keep its connection slot.
  const sent = await deadline(answerAndEnd(ctx.io, status, why + "\n"), writeMs(ctx.opts));
  if (sent === TIMED_OUT) why += "; the answer was not taken in time";
  end(ctx, `http: ${status} ${why}`);
}

/** Close the connection; with a reason, logged (a peer's normal end is not). */
function end(ctx: ConnContext, why?: string): void {
  if (ctx.closed) return;
  ctx.closed = true;
  if (why) ctx.log(`closing ${escapeForLog(ctx.conn.remoteAddr)}: ${why}`);
  ctx.conn.close();
}

const writeMs = (o: HttpServeOptions) => o.writeTimeoutMs ?? WRITE_TIMEOUT_MS;
