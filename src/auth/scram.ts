/**
 * SCRAM-SHA-256 (RFC 5802, RFC 7677) as an MQTT 5.0 enhanced authentication
 * method (4.12), over the same stored credentials as plain passwords:
 *
 *   CONNECT  Authentication Method "SCRAM-SHA-256",
 *            Authentication Data  client-first   `n,,n=user,r=<client nonce>`
 *   AUTH 0x18                     server-first   `r=<client nonce><server nonce>,s=<salt>,i=<iterations>`
 *   AUTH 0x18                     client-final   `c=biws,r=<nonce>,p=<proof>`
 *   CONNACK 0x00                  server-final   `v=<server signature>`
 *
 * Re-authentication (AUTH 0x19) runs the same exchange on a live connection
 * and ends with AUTH 0x00 carrying `v=...`. Failures: a wrong proof, an
 * unknown user or a username other than the connection's is 0x86 (the core
 * turns a failed re-authentication into DISCONNECT 0x87); malformed messages
 * are 0x86 with a Reason String. An unknown user still gets a server-first
 * message with a salt derived from the name, so the exchange does not reveal
 * which users exist. Channel binding is not offered (`p=` is refused).
 */
import type { AuthDecision, AuthStep, ClientInfo, EnhancedAuthenticator } from "../broker/hooks.ts";
import {
  b64,
  constantTimeEqual,
  DEFAULT_ITERATIONS,
  hmac,
  type ScramCredential,
  sha256,
  unb64,
  xor,
} from "./credential.ts";

export const SCRAM_METHOD = "SCRAM-SHA-256";
const BAD_CREDENTIALS = 0x86;
/** Largest client message we parse (bytes); real ones are well under 300. */
const MAX_MESSAGE = 4096;

/** What the authenticator needs to know about a user. */
export interface ScramUser {
  credential: ScramCredential;
  authorizedSub?: string[];
  authorizedPub?: string[];
}

export interface ScramOptions {
  /** The stored credential of `username`, if it exists. */
  lookup(username: string): ScramUser | undefined;
  /** Server nonce part (printable ASCII without ","); random 18 bytes in base64 by default. */
  nonce?: () => string;
  /** Checked when an exchange starts (e.g. the connect rate limit); a refusal ends it. */
  admit?(client: ClientInfo): (AuthDecision & { ok: false }) | undefined;
}

const decoder = new TextDecoder("utf-8", { fatal: true });

export function scramAuthenticator(opts: ScramOptions): EnhancedAuthenticator {
  const nonce = opts.nonce ?? (() => b64(crypto.getRandomValues(new Uint8Array(18))));
  // Salts for users that do not exist: stable per name for this process.
  const fakeSaltKey = crypto.getRandomValues(new Uint8Array(32));
  return {
    method: SCRAM_METHOD,
    start(client) {
      let state: "first" | "final" | "done" = "first";
      let user: ScramUser | undefined;
      let username = "";
      let gs2Header = "";
      let fullNonce = "";
      let authPrefix = ""; // client-first-message-bare "," server-first-message
      return {
        async step(data): Promise<AuthStep> {
          if (state === "first") {
            state = "done";
            const refused = opts.admit?.(client);
            if (refused) return fail(refused.reasonCode, refused.reasonString);
            const first = parseClientFirst(data);
            if (typeof first === "string") return fail(BAD_CREDENTIALS, first);
            // The CONNECT's User Name (or the name a connection already authenticated as) must match.
            if (client.username !== undefined && client.username !== first.username) {
              return fail(BAD_CREDENTIALS);
            }
            username = first.username;
            gs2Header = first.gs2Header;
            user = opts.lookup(username);
            const salt = user?.credential.salt ??
              (await hmac(fakeSaltKey, `salt\0${username}`)).subarray(0, 16);
            const iterations = user?.credential.iterations ?? DEFAULT_ITERATIONS;
            fullNonce = first.nonce + nonce();
            const serverFirst = `r=${fullNonce},s=${b64(salt)},i=${iterations}`;
            authPrefix = `${first.bare},${serverFirst}`;
            state = "final";
            return { kind: "continue", data: encode(serverFirst) };
          }
          if (state === "final") {
            state = "done";
            const final = parseClientFinal(data);
            if (typeof final === "string") return fail(BAD_CREDENTIALS, final);
            if (final.channelBinding !== b64(encode(gs2Header))) {
              return fail(BAD_CREDENTIALS, "SCRAM channel binding data does not match");
            }
            if (final.nonce !== fullNonce) return fail(BAD_CREDENTIALS, "SCRAM nonce mismatch");
            if (!user) return fail(BAD_CREDENTIALS);
            const authMessage = `${authPrefix},${final.withoutProof}`;
            const { storedKey, serverKey } = user.credential;
            const clientSignature = await hmac(storedKey, authMessage);
            if (final.proof.length !== clientSignature.length) return fail(BAD_CREDENTIALS);
            const clientKey = xor(final.proof, clientSignature);
            if (!constantTimeEqual(await sha256(clientKey), storedKey)) {
              return fail(BAD_CREDENTIALS);
            }
            const serverSignature = await hmac(serverKey, authMessage);
            return {
              kind: "success",
              data: encode(`v=${b64(serverSignature)}`),
              decision: {
                ok: true,
                username,
                authorizedSub: user.authorizedSub,
                authorizedPub: user.authorizedPub,
              },
            };
          }
          return fail(BAD_CREDENTIALS, "SCRAM exchange already finished");
        },
      };
    },
  };
}

function fail(reasonCode: number, reasonString?: string): AuthStep {
  return { kind: "fail", reasonCode, reasonString };
}

function encode(s: string): Uint8Array {
  return new TextEncoder().encode(s);
}

function text(data: Uint8Array | undefined, what: string): string | { error: string } {
  if (!data || data.length === 0) return { error: `SCRAM ${what} is missing` };
  if (data.length > MAX_MESSAGE) return { error: `SCRAM ${what} is too long` };
  try {
    return decoder.decode(data);
  } catch {
    return { error: `SCRAM ${what} is not UTF-8` };
  }
}

interface ClientFirst {
  gs2Header: string;
  bare: string;
  username: string;
  nonce: string;
}

/** `gs2-header client-first-message-bare`, or an error message. */
export function parseClientFirst(data: Uint8Array | undefined): ClientFirst | string {
  const t = text(data, "client-first-message");
  if (typeof t !== "string") return t.error;
  const bad = "malformed SCRAM client-first-message";
  // gs2-header = gs2-cbind-flag "," [ authzid ] ","
  const c1 = t.indexOf(",");
  const c2 = c1 < 0 ? -1 : t.indexOf(",", c1 + 1);
  if (c2 < 0) return bad;
  const flag = t.slice(0, c1);
  if (flag.startsWith("p=")) return "SCRAM channel binding is not supported";
  if (flag !== "n" && flag !== "y") return bad;
  const authzid = t.slice(c1 + 1, c2);
  const bare = t.slice(c2 + 1);
  const attrs = bare.split(",");
  if (attrs[0]?.startsWith("m=")) return "SCRAM mandatory extensions are not supported";
  if (!attrs[0]?.startsWith("n=") || !attrs[1]?.startsWith("r=")) return bad;
  const username = saslName(attrs[0].slice(2));
  const nonce = attrs[1].slice(2);
  if (username === undefined || username === "" || !validNonce(nonce)) return bad;
  if (authzid !== "") {
    // Acting as another identity is not supported; naming oneself is harmless.
    if (!authzid.startsWith("a=") || saslName(authzid.slice(2)) !== username) {
      return "SCRAM authorization identity is not supported";
    }
  }
  return { gs2Header: t.slice(0, c2 + 1), bare, username, nonce };
}

interface ClientFinal {
  channelBinding: string;
  nonce: string;
  proof: Uint8Array;
  withoutProof: string;
}

/** `c=...,r=...[,extensions],p=...`, or an error message. */
export function parseClientFinal(data: Uint8Array | undefined): ClientFinal | string {
  const t = text(data, "client-final-message");
  if (typeof t !== "string") return t.error;
  const bad = "malformed SCRAM client-final-message";
  const p = t.lastIndexOf(",p=");
  if (p < 0) return bad;
  const withoutProof = t.slice(0, p);
  const attrs = withoutProof.split(",");
  if (!attrs[0]?.startsWith("c=") || !attrs[1]?.startsWith("r=")) return bad;
  const proof = unb64(t.slice(p + 3));
  if (!proof) return bad;
  return { channelBinding: attrs[0].slice(2), nonce: attrs[1].slice(2), proof, withoutProof };
}

/** saslname: "=2C" is ",", "=3D" is "="; any other "=" is malformed. */
function saslName(s: string): string | undefined {
  if (/=(?!2C|3D)/.test(s)) return undefined;
  return s.replaceAll("=2C", ",").replaceAll("=3D", "=");
}

/** printable = %x21-2B / %x2D-7E (no ","), non-empty. */
function validNonce(s: string): boolean {
  return /^[\x21-\x2b\x2d-\x7e]+$/.test(s);
}
