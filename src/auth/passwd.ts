/**
 * Editing a password file (`auth.password-file`) for `mqttx passwd`: one
 * `username:hash` line per user; comments, blank lines and other users are
 * kept as they are. `passwdCommand` is the command itself; the CLI hands it
 * the runtime's file I/O and standard input.
 */
import { formatCredential, hashPassword } from "./credential.ts";

/** Why `username` cannot go in a password file, or undefined if it can. */
export function usernameError(username: string): string | undefined {
  if (username === "") return "the username is empty";
  if (username.includes(":")) return "a username in a password file cannot contain ':'";
  if ([...username].some((ch) => ch.charCodeAt(0) < 0x20 || ch === "\x7f")) {
    return "the username contains a control character";
  }
  if (username.startsWith("#")) return "a username in a password file cannot start with '#'";
  if (username.trim() !== username) return "the username starts or ends with white space";
  return undefined;
}

/** Set `username`'s hash: replace its line (dropping any duplicates) or append one. */
export function setPasswordLine(text: string, username: string, hash: string): string {
  const lines = splitLines(text);
  const entry = `${username}:${hash}`;
  let done = false;
  const out: string[] = [];
  for (const line of lines) {
    if (lineUser(line) !== username) out.push(line);
    else if (!done) {
      out.push(entry);
      done = true;
    }
  }
  if (!done) out.push(entry);
  return out.join("\n") + "\n";
}

/** Remove `username`'s line(s); `found` is false when it had none. */
export function removePasswordLine(
  text: string,
  username: string,
): { text: string; found: boolean } {
  const lines = splitLines(text);
  const out = lines.filter((l) => lineUser(l) !== username);
  const found = out.length !== lines.length;
  return { text: out.length === 0 ? "" : out.join("\n") + "\n", found };
}

function splitLines(text: string): string[] {
  const lines = text.split(/\r?\n/);
  if (lines.length > 0 && lines[lines.length - 1] === "") lines.pop();
  return lines;
}

function lineUser(line: string): string | undefined {
  const t = line.trim();
  if (t === "" || t.startsWith("#")) return undefined;
  const colon = t.indexOf(":");
  return colon > 0 ? t.slice(0, colon) : undefined;
}

/** What `mqttx passwd` needs from its surroundings (the CLI passes the runtime's file I/O). */
export interface PasswdEnv {
  readTextFile(path: string): Promise<string>;
  writeTextFile(path: string, data: string, opts?: { mode?: number }): Promise<void>;
  /** The first line of standard input, or undefined at end of input. */
  readLine(): Promise<string | undefined>;
  out(line: string): void;
  err(line: string): void;
}

export type PasswdAction =
  | { action: "hash"; password?: string }
  | { action: "set"; file: string; username: string; password?: string; create: boolean }
  | { action: "delete"; file: string; username: string };

/**
 * Run `mqttx passwd`; returns the exit code (0 done, 1 failed, 2 bad usage).
 * Files are written with mode 0600 when created. The password is never printed.
 */
export async function passwdCommand(a: PasswdAction, env: PasswdEnv): Promise<number> {
  const fail = (code: number, message: string) => (env.err(`mqttx passwd: ${message}`), code);
  if (a.action !== "hash") {
    const bad = usernameError(a.username);
    if (bad) return fail(2, bad);
  }
  let text = "";
  if (a.action === "delete" || (a.action === "set" && !a.create)) {
    try {
      text = await env.readTextFile(a.file);
    } catch (e) {
      const hint = a.action === "set" ? " (use -c to create it)" : "";
      return fail(1, `cannot read ${a.file}${hint}: ${errorMessage(e)}`);
    }
  }
  if (a.action === "delete") {
    const r = removePasswordLine(text, a.username);
    if (!r.found) return fail(1, `user ${a.username} is not in ${a.file}`);
    return await write(a.file, r.text) ?? (env.out(`user ${a.username} deleted from ${a.file}`), 0);
  }
  const password = a.password ?? (await env.readLine())?.replace(/\r$/, "");
  if (password === undefined || password === "") {
    return fail(2, "no password given (as an argument or as a line on standard input)");
  }
  const hash = formatCredential(await hashPassword(password));
  if (a.action === "hash") {
    env.out(hash);
    return 0;
  }
  return await write(a.file, setPasswordLine(text, a.username, hash)) ??
    (env.out(`user ${a.username} set in ${a.file}`), 0);

  async function write(path: string, data: string): Promise<number | undefined> {
    try {
      await env.writeTextFile(path, data, { mode: 0o600 });
      return undefined;
    } catch (e) {
      return fail(1, `cannot write ${path}: ${errorMessage(e)}`);
    }
  }
}

function errorMessage(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
