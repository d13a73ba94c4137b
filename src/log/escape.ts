/**
 * Client-supplied strings (client ids, user names, topics) go through this
 * before they reach a text log line: control characters, newlines, ANSI escape
 * sequences and other non-printables become visible escapes, so a client can
 * neither forge log lines nor drive the operator's terminal.
 */
// deno-lint-ignore no-control-regex
const UNSAFE = /[\u0000-\u001f\u007f-\u009f\u2028\u2029\\]/g;

export function escapeForLog(s: string): string {
  return s.replace(UNSAFE, (c) => {
    switch (c) {
      case "\\":
        return "\\\\";
      case "\n":
        return "\\n";
      case "\r":
        return "\\r";
      case "\t":
        return "\\t";
    }
    const code = c.charCodeAt(0);
    return code <= 0xff ? `\\x${code.toString(16).padStart(2, "0")}` : `\\u${code.toString(16)}`;
  });
}
