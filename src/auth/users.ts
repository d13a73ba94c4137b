/**
 * The built-in users: `auth.users` from the config and the `username:hash`
 * lines of `auth.password-file` (a config entry wins over a file line of the
 * same name). Every password is a stored SCRAM-SHA-256 credential
 * (credential.ts); a plain-text password is a start-up error, so a typo never
 * turns into an open door.
 *
 * Checking a plain password costs one PBKDF2 (4096 rounds, a few ms). Recent
 * successes are remembered for 5 minutes as an HMAC of the password under a
 * per-process random key, so a device reconnecting in a loop does not pay it
 * every time; failures are never cached, so guessing always pays full price.
 */
import { constantTimeEqual, hmac, parseCredential, verifyPassword } from "./credential.ts";
import type { ScramUser } from "./scram.ts";

export interface UserEntry extends ScramUser {
  username: string;
  /** The stored text, part of the cache key (a changed hash invalidates the entry). */
  hash: string;
}

export interface ConfigUser {
  username: string;
  password: string;
  authorizedSub: string[];
  authorizedPub: string[];
}

const CACHE_TTL_MS = 5 * 60_000;
const CACHE_MAX = 1024;

/** `username:hash` lines; "#" comments and blank lines are skipped. Throws naming the line. */
export function parsePasswordFile(text: string, path: string): Map<string, string> {
  const out = new Map<string, string>();
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i].trim();
    if (line === "" || line.startsWith("#")) continue;
    const colon = line.indexOf(":");
    const username = colon > 0 ? line.slice(0, colon) : "";
    const hash = colon > 0 ? line.slice(colon + 1) : "";
    if (username === "" || !parseCredential(hash)) {
      throw new Error(
        `${path}:${i + 1}: expected "username:SCRAM-SHA-256$..." as written by \`mqttx passwd\``,
      );
    }
    out.set(username, hash);
  }
  return out;
}

export class UserTable {
  private readonly users = new Map<string, UserEntry>();
  private readonly cacheKey = crypto.getRandomValues(new Uint8Array(32));
  private readonly cache = new Map<string, { tag: Uint8Array; until: number }>();

  constructor(private readonly now: () => number = Date.now) {}

  /** Build from config users and password-file text; throws on an entry that is not a hash. */
  static from(
    configUsers: readonly ConfigUser[],
    file?: { text: string; path: string },
    now?: () => number,
  ): UserTable {
    const table = new UserTable(now);
    if (file) {
      for (const [username, hash] of parsePasswordFile(file.text, file.path)) {
        table.add(username, hash);
      }
    }
    configUsers.forEach((u, i) => {
      const credential = parseCredential(u.password);
      if (!credential) {
        throw new Error(
          `auth.users[${i}] (${u.username}): password is not a SCRAM-SHA-256 hash; ` +
            "create one with `mqttx passwd --hash`",
        );
      }
      table.users.set(u.username, {
        username: u.username,
        hash: u.password,
        credential,
        authorizedSub: u.authorizedSub,
        authorizedPub: u.authorizedPub,
      });
    });
    return table;
  }

  private add(username: string, hash: string): void {
    this.users.set(username, { username, hash, credential: parseCredential(hash)! });
  }

  get size(): number {
    return this.users.size;
  }

  get(username: string): UserEntry | undefined {
    return this.users.get(username);
  }

  /** Constant-time check of a plain password against the user's stored credential. */
  async verify(user: UserEntry, password: Uint8Array): Promise<boolean> {
    const key = `${user.username}\0${user.hash}`;
    const tag = await hmac(this.cacheKey, password);
    const hit = this.cache.get(key);
    const now = this.now();
    if (hit && hit.until > now && constantTimeEqual(hit.tag, tag)) return true;
    if (!(await verifyPassword(user.credential, password))) return false;
    this.cache.delete(key); // re-insert: Map order is our LRU order
    this.cache.set(key, { tag, until: now + CACHE_TTL_MS });
    if (this.cache.size > CACHE_MAX) this.cache.delete(this.cache.keys().next().value!);
    return true;
  }
}
