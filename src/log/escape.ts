/**
 * Client-supplied strings (client ids, user names, topics) go into log lines
 * through this: control characters, newlines and ANSI escapes would otherwise
 * forge or garble lines. Printable text is kept as is; the rest becomes
 * `\n`, `\r`, `\t`, `\\` or `\xHH` / `\u{H}`.
 */
export function escapeForLog(s: string): string {
  // Fast path: nothing to escape (the usual client id).
  // deno-lint-ignore no-control-regex
  if (!/[\u0000-\u001f\u007f-\u009f\\\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]/.test(s)) {
    return s;
  }
  let out = "";
  for (const ch of s) {
    const c = ch.codePointAt(0)!;
    if (ch === "\\") out += "\\\\";
    else if (ch === "\n") out += "\\n";
    else if (ch === "\r") out += "\\r";
    else if (ch === "\t") out += "\\t";
    else if (c < 0x20 || (c >= 0x7f && c <= 0x9f)) out += "\\x" + c.toString(16).padStart(2, "0");
    else if (
      c === 0x2028 || c === 0x2029 || c === 0x200e || c === 0x200f ||
      (c >= 0x202a && c <= 0x202e) || (c >= 0x2066 && c <= 0x2069)
    ) out += `\\u{${c.toString(16)}}`;
    else out += ch;
  }
  return out;
}
