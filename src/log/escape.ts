/**
 * Client-supplied strings (client id, user name, topic, protocol name) go
 * into log lines through this: a newline would forge a log line and an ANSI
 * escape would repaint the operator's terminal. Control characters (C0, DEL,
 * C1), the Unicode line/paragraph separators and bidirectional overrides
 * become visible escapes; a backslash is doubled so an escape cannot be faked.
 */

// deno-lint-ignore no-control-regex
const UNSAFE = /[\x00-\x1f\x7f-\x9f\\\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]/g;

const NAMED: Record<string, string> = { "\n": "\\n", "\r": "\\r", "\t": "\\t", "\\": "\\\\" };

function escapeChar(c: string): string {
  const named = NAMED[c];
  if (named !== undefined) return named;
  const code = c.charCodeAt(0);
  return code < 0x100
    ? `\\x${code.toString(16).padStart(2, "0")}`
    : `\\u${code.toString(16).padStart(4, "0")}`;
}

/** `s` made safe for one log line; the same string when there is nothing to escape. */
export function escapeForLog(s: string): string {
  UNSAFE.lastIndex = 0;
  if (!UNSAFE.test(s)) return s;
  UNSAFE.lastIndex = 0;
  return s.replace(UNSAFE, escapeChar);
}
