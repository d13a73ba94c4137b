/**
 * The HTTP/1.1 request head as both of our HTTP servers read it (the WebSocket upgrade in
 * websocket_server.ts, the operations endpoint in http_server.ts), and their short plain answers.
 * Runtime-free.
 */
import type { ConnIo } from "./conn_io.ts";

/** Largest request head read (request line and headers); past it: 431. */
export const MAX_HEAD = 16 * 1024;

export interface Head {
  method: string;
  target: string;
  /** "HTTP/1.1", "HTTP/1.0". */
  version: string;
  /** Lower-case names; a repeated header's values joined with ", ". */
  headers: Map<string, string>;
  /** Bytes after the head (a body, the next request, the client's first frames). */
  rest: Uint8Array;
}

/** What a read of the head has so far: a timed-out read tells a silent peer from a slow one. */
export interface HeadProgress {
  bytes: number;
}

/**
 * The next request head, reading after `initial` (what the last request left); undefined when
 * the input ends first, "too-large" past MAX_HEAD, "bad" for a request line that is not one.
 */
export async function readHead(
  io: ConnIo,
  initial: Uint8Array = new Uint8Array(0),
  progress: HeadProgress = { bytes: 0 },
): Promise<Head | "too-large" | "bad" | undefined> {
  let buf = initial;
  let from = 0;
  for (;;) {
    progress.bytes = buf.byteLength;
    const end = indexOfCrlfCrlf(buf, from);
    if (end > MAX_HEAD || end < 0 && buf.byteLength > MAX_HEAD) return "too-large";
    if (end >= 0) return parseHead(buf, end);
    from = Math.max(0, buf.byteLength - 3);
    const value = await io.read();
    if (!value) return undefined;
    buf = concat(buf, value);
  }
}

function parseHead(buf: Uint8Array, end: number): Head | "bad" {
  const text = new TextDecoder().decode(buf.subarray(0, end));
  const [requestLine, ...headerLines] = text.split("\r\n");
  const [method, target, version = "HTTP/1.0", extra] = requestLine.split(" ");
  if (!method || !target || extra !== undefined || !/^HTTP\/1\.\d$/.test(version)) return "bad";
  const headers = new Map<string, string>();
  for (const line of headerLines) {
    // Strict (RFC 9112 5.1, 5.2): a proxy in front may read a folded line, a name with space
    // before its colon or a line without one differently, and disagree on where a body ends.
    const colon = line.indexOf(":");
    if (colon <= 0 || !TOKEN.test(line.slice(0, colon))) return "bad";
    const name = line.slice(0, colon).toLowerCase();
    const value = line.slice(colon + 1).trim();
    headers.set(name, headers.has(name) ? `${headers.get(name)}, ${value}` : value);
  }
  return { method, target, version, headers, rest: buf.slice(end + 4) };
}

/** A header name (RFC 9110 5.1, 5.6.2). */
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

function indexOfCrlfCrlf(b: Uint8Array, from: number): number {
  for (let i = from; i + 3 < b.length; i++) {
    if (b[i] === 13 && b[i + 1] === 10 && b[i + 2] === 13 && b[i + 3] === 10) return i;
  }
  return -1;
}

export function concat(a: Uint8Array, b: Uint8Array): Uint8Array<ArrayBuffer> {
  if (a.byteLength === 0) return b.slice();
  const out = new Uint8Array(a.byteLength + b.byteLength);
  out.set(a);
  out.set(b, a.byteLength);
  return out;
}

export const REASONS: Record<number, string> = {
  200: "OK",
  201: "Created",
  204: "No Content",
  304: "Not Modified",
  400: "Bad Request",
  401: "Unauthorized",
  403: "Forbidden",
  404: "Not Found",
  405: "Method Not Allowed",
  408: "Request Timeout",
  411: "Length Required",
  413: "Content Too Large",
  426: "Upgrade Required",
  431: "Request Header Fields Too Large",
  500: "Internal Server Error",
  503: "Service Unavailable",
};

const enc = new TextEncoder();

export const TIMED_OUT = Symbol("timed out");

/** `p`, or TIMED_OUT once `ms` passed first (a peer's request or answer that does not come). */
export function deadline<T>(p: Promise<T>, ms: number): Promise<T | typeof TIMED_OUT> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<typeof TIMED_OUT>((resolve) => {
    timer = setTimeout(() => resolve(TIMED_OUT), ms);
  });
  return Promise.race([p, late]).finally(() => clearTimeout(timer));
}

/** A short plain-text answer, then the connection is to be closed (the caller closes it). */
export async function answerAndEnd(
  io: ConnIo,
  status: number,
  body: string,
  extra: string[] = [],
): Promise<void> {
  const bytes = enc.encode(body);
  const head = [
    `HTTP/1.1 ${status} ${REASONS[status] ?? "Error"}`,
    "Content-Type: text/plain; charset=utf-8",
    `Content-Length: ${bytes.byteLength}`,
    "Connection: close",
    ...extra,
  ].join("\r\n") + "\r\n\r\n";
  await io.write(concat(enc.encode(head), bytes)).catch(() => {});
  await io.flush();
}
