/**
 * Stored passwords: SCRAM-SHA-256 credentials (RFC 5802, RFC 7677) in
 * PostgreSQL's notation,
 *
 *     SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>     (base64 fields)
 *
 * One entry verifies a plain CONNECT password (derive, compare in constant
 * time) and serves a SCRAM-SHA-256 AUTH exchange, which never sees the
 * password. The password itself is never stored:
 *
 *     SaltedPassword = PBKDF2-HMAC-SHA-256(password, salt, iterations)
 *     StoredKey      = SHA-256(HMAC(SaltedPassword, "Client Key"))
 *     ServerKey      = HMAC(SaltedPassword, "Server Key")
 *
 * Passwords are used as their UTF-8 bytes (no SASLprep; ASCII passwords are
 * unaffected). WebCrypto only, so it runs on Deno and Bun alike.
 */

export const SCRAM_PREFIX = "SCRAM-SHA-256";
/** RFC 7677 asks for at least 4096; PostgreSQL uses the same default. */
export const DEFAULT_ITERATIONS = 4096;
export const MIN_ITERATIONS = 4096;
const MAX_ITERATIONS = 10_000_000;
const SALT_BYTES = 16;

export interface ScramCredential {
  iterations: number;
  salt: Uint8Array;
  storedKey: Uint8Array;
  serverKey: Uint8Array;
}

const encoder = new TextEncoder();

/** Hash a password into a new credential with a random salt. */
export async function hashPassword(
  password: string | Uint8Array,
  iterations = DEFAULT_ITERATIONS,
  salt: Uint8Array = crypto.getRandomValues(new Uint8Array(SALT_BYTES)),
): Promise<ScramCredential> {
  if (!Number.isInteger(iterations) || iterations < MIN_ITERATIONS) {
    throw new RangeError(`iterations must be an integer >= ${MIN_ITERATIONS}`);
  }
  const salted = await saltedPassword(bytes(password), salt, iterations);
  const clientKey = await hmac(salted, "Client Key");
  return {
    iterations,
    salt,
    storedKey: await sha256(clientKey),
    serverKey: await hmac(salted, "Server Key"),
  };
}

/** `SCRAM-SHA-256$4096:<salt>$<StoredKey>:<ServerKey>` */
export function formatCredential(c: ScramCredential): string {
  return `${SCRAM_PREFIX}$${c.iterations}:${b64(c.salt)}$${b64(c.storedKey)}:${b64(c.serverKey)}`;
}

/** Parse a stored credential; undefined if `text` is not one (e.g. a plain-text password). */
export function parseCredential(text: string): ScramCredential | undefined {
  const m = /^SCRAM-SHA-256\$(\d{1,9}):([A-Za-z0-9+/=]+)\$([A-Za-z0-9+/=]+):([A-Za-z0-9+/=]+)$/i
    .exec(text.trim());
  if (!m) return undefined;
  const iterations = Number(m[1]);
  if (iterations < MIN_ITERATIONS || iterations > MAX_ITERATIONS) return undefined;
  const salt = unb64(m[2]);
  const storedKey = unb64(m[3]);
  const serverKey = unb64(m[4]);
  if (!salt || salt.length === 0 || storedKey?.length !== 32 || serverKey?.length !== 32) {
    return undefined;
  }
  return { iterations, salt, storedKey, serverKey };
}

/** Does `password` match the credential? Derives the StoredKey and compares in constant time. */
export async function verifyPassword(
  c: ScramCredential,
  password: string | Uint8Array,
): Promise<boolean> {
  const salted = await saltedPassword(bytes(password), c.salt, c.iterations);
  const storedKey = await sha256(await hmac(salted, "Client Key"));
  return constantTimeEqual(storedKey, c.storedKey);
}

// --- primitives shared with the SCRAM exchange ---

export async function saltedPassword(
  password: Uint8Array,
  salt: Uint8Array,
  iterations: number,
): Promise<Uint8Array> {
  const key = await crypto.subtle.importKey("raw", password as BufferSource, "PBKDF2", false, [
    "deriveBits",
  ]);
  const bits = await crypto.subtle.deriveBits(
    { name: "PBKDF2", hash: "SHA-256", salt: salt as BufferSource, iterations },
    key,
    256,
  );
  return new Uint8Array(bits);
}

export async function hmac(key: Uint8Array, data: string | Uint8Array): Promise<Uint8Array> {
  const k = await crypto.subtle.importKey(
    "raw",
    key as BufferSource,
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign"],
  );
  return new Uint8Array(await crypto.subtle.sign("HMAC", k, bytes(data) as BufferSource));
}

export async function sha256(data: Uint8Array): Promise<Uint8Array> {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", data as BufferSource));
}

/** Equal length and bytes, in time that depends only on the length. */
export function constantTimeEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i] ^ b[i];
  return diff === 0;
}

export function xor(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length);
  for (let i = 0; i < a.length; i++) out[i] = a[i] ^ b[i];
  return out;
}

export function bytes(s: string | Uint8Array): Uint8Array {
  return typeof s === "string" ? encoder.encode(s) : s;
}

export function b64(data: Uint8Array): string {
  let s = "";
  for (let i = 0; i < data.length; i++) s += String.fromCharCode(data[i]);
  return btoa(s);
}

/** Strict base64 (padding required); undefined when malformed. */
export function unb64(s: string): Uint8Array | undefined {
  if (s.length % 4 !== 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(s)) return undefined;
  try {
    const bin = atob(s);
    const out = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out;
  } catch {
    return undefined;
  }
}
