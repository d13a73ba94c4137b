/**
 * The HTTP authentication service of the original mqttx (`auth.url`): the
 * broker POSTs `{"clientId", "username", "password"}` as JSON (the password as
 * a UTF-8 string). 200 accepts; its JSON body may carry `authorizedSub` and
 * `authorizedPub` string lists (anything else in the body is ignored, and an
 * empty or non-JSON body is a plain accept). Any other status refuses. A
 * timeout or a network error is reported as such, and the caller decides
 * (`auth.is-mandatory`).
 *
 * One deadline, `auth.read-timeout`, bounds the whole request — connecting,
 * sending, and reading the body; fetch() has no separate connect phase, so
 * `auth.connect-timeout` shares it. `stop()` aborts requests in flight.
 * Passwords are never logged.
 */
import { readBody } from "../http/read_body.ts";

export type HttpAuthResult =
  | { kind: "accept"; authorizedSub?: string[]; authorizedPub?: string[] }
  | { kind: "refuse"; status: number }
  | { kind: "error"; message: string };

export interface HttpAuthRequest {
  clientId: string;
  username: string;
  password: string;
}

/** Largest response body read (bytes); the lists of a real service are far smaller. */
const MAX_BODY = 1024 * 1024;

export class HttpAuthService {
  private readonly inFlight = new Set<AbortController>();

  constructor(
    readonly url: string,
    private readonly timeoutMs: number,
    private readonly fetchImpl: typeof fetch = fetch,
  ) {}

  async ask(req: HttpAuthRequest): Promise<HttpAuthResult> {
    const ctrl = new AbortController();
    this.inFlight.add(ctrl);
    const timer = setTimeout(() => ctrl.abort(new Error("timed out")), this.timeoutMs);
    try {
      const res = await this.fetchImpl(this.url, {
        method: "POST",
        headers: { "content-type": "application/json", accept: "application/json" },
        body: JSON.stringify(req),
        signal: ctrl.signal,
        redirect: "manual",
      });
      if (res.status !== 200) {
        await res.body?.cancel(); // not read: frees the connection
        return { kind: "refuse", status: res.status };
      }
      // An oversized body is not read to its end: accepted, without topic lists.
      return { kind: "accept", ...rights(await readBody(res, MAX_BODY) ?? "") };
    } catch (e) {
      const reason = ctrl.signal.aborted ? ctrl.signal.reason : e;
      return { kind: "error", message: reason instanceof Error ? reason.message : String(reason) };
    } finally {
      clearTimeout(timer);
      this.inFlight.delete(ctrl);
    }
  }

  /** Abort every request in flight (at shutdown). */
  stop(): void {
    for (const c of this.inFlight) c.abort(new Error("broker stopping"));
    this.inFlight.clear();
  }
}

function rights(body: string): { authorizedSub?: string[]; authorizedPub?: string[] } {
  if (body.trim() === "") return {};
  let json: unknown;
  try {
    json = JSON.parse(body);
  } catch {
    return {};
  }
  if (!json || typeof json !== "object") return {};
  const o = json as Record<string, unknown>;
  const out: { authorizedSub?: string[]; authorizedPub?: string[] } = {};
  if (isStrings(o.authorizedSub)) out.authorizedSub = o.authorizedSub;
  if (isStrings(o.authorizedPub)) out.authorizedPub = o.authorizedPub;
  return out;
}

function isStrings(v: unknown): v is string[] {
  return Array.isArray(v) && v.every((x) => typeof x === "string");
}

/** The URL without credentials or query, for log lines. */
export function safeUrl(url: string): string {
  try {
    const u = new URL(url);
    return `${u.origin}${u.pathname}`;
  } catch {
    return "(invalid url)";
  }
}
