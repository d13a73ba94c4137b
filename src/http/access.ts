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

/** Does `header` (the Authorization header) carry exactly this Bearer token? Constant time. */
export function bearerMatches(header: string | null, token: string): boolean {
  const given = encoder.encode(header?.startsWith("Bearer ") ? header.slice(7).trim() : "");
  const want = encoder.encode(token);
  // Every byte of the longer one is compared: no early exit reveals a matching prefix.
  const n = Math.max(given.length, want.length);
  let diff = given.length ^ want.length;
  for (let i = 0; i < n; i++) diff |= (given[i] ?? 0) ^ (want[i] ?? 0);
  return diff === 0;
}
