/**
 * Who may use the operations endpoint's API: a Bearer token (`http.token`),
 * compared in constant time. Without a token the API is only allowed on a
 * loopback host; the config check and startApp both refuse anything else.
 */

/** 127.0.0.0/8, ::1 and localhost: reachable from this machine only. */
export function isLoopbackHost(host: string): boolean {
  const h = host.toLowerCase().replace(/^\[(.*)\]$/, "$1");
  return h === "localhost" || h === "::1" || /^127(\.\d{1,3}){3}$/.test(h);
}

/** Why this http section may not run, or undefined when it may. */
export function httpTokenProblem(
  http: { enable: boolean; host: string; token?: string },
): string | undefined {
  if (!http.enable || isLoopbackHost(http.host) || (http.token ?? "") !== "") return undefined;
  return `http.host is ${JSON.stringify(http.host)}, which is not a loopback address, so ` +
    "http.token must be set (the admin API would otherwise be open to the network)";
}

const encoder = new TextEncoder();

/**
 * Why a request to the API without a token is refused: it could come from a web page in a
 * browser on this machine. Browsers send an Origin with every cross-site POST (a form, a no-cors
 * fetch), and a page that rebinds its own name to 127.0.0.1 still names that name as the Host;
 * curl and scripts send neither.
 */
export function browserProblem(req: Request): string | undefined {
  const host = req.headers.get("host") ?? "";
  if (host !== "" && !isLoopbackHost(host.replace(/:\d+$/, ""))) {
    return `Host ${JSON.stringify(host)} is not a loopback name (set http.token to serve others)`;
  }
  const origin = req.headers.get("origin");
  if (origin !== null && (origin === "null" || !sameHost(origin, host))) {
    return `a request from ${JSON.stringify(origin)} (a web page) needs http.token`;
  }
  return undefined;
}

function sameHost(origin: string, host: string): boolean {
  try {
    return new URL(origin).host === host.toLowerCase();
  } catch {
    return false;
  }
}

/** Does `header` (the Authorization header) carry exactly this Bearer token? Constant time. */
export function bearerMatches(header: string | null, token: string): boolean {
  // The scheme is case-insensitive (RFC 9110 11.1); the token is not.
  const bearer = header !== null && /^bearer /i.test(header);
  const given = encoder.encode(bearer ? header.slice(7).trim() : "");
  const want = encoder.encode(token);
  // Every byte of the longer one is compared: no early exit reveals a matching prefix.
  const n = Math.max(given.length, want.length);
  let diff = given.length ^ want.length;
  for (let i = 0; i < n; i++) diff |= (given[i] ?? 0) ^ (want[i] ?? 0);
  return diff === 0;
}
