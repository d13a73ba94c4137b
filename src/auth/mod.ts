/**
 * Authentication from `auth.*` config: one `authenticate` hook plus the
 * SCRAM-SHA-256 enhanced authenticator. Decision order per CONNECT:
 *
 * 1. `connect-rate-per-minute` > 0 and this source IP spent its budget → 0x9F
 *    (3.1.1: return code 3). Every attempt counts.
 * 2. A User Name is present:
 *    a. a built-in user (`users`, `password-file`): right password → accept
 *       with the user's `authorized-sub`/`authorized-pub`; wrong or no password → 0x86;
 *    b. otherwise, with `url` set, ask the HTTP service: 200 → accept with the
 *       lists from its body; another status → 0x86; timeout or network error →
 *       0x88 when `is-mandatory`, else go on to rule 3 (logged);
 *    c. otherwise, when built-in users exist (`users` non-empty or a
 *       `password-file` set: names are checked, and this one is unknown) → 0x86,
 *       after a decoy PBKDF2 so timing does not reveal which names exist;
 * 3. No verified name (no User Name, or nothing configured to check one, or
 *    the HTTP service failed and is not mandatory): `allow-anonymous` false →
 *    0x87 (3.1.1: 5); true → no opinion (later hooks decide; none = accepted).
 *
 * With `ssl.use-cn-as-username`, a client with a verified certificate is
 * accepted as its CN before rule 2 (the certificate is the credential).
 *
 * SCRAM-SHA-256 (MQTT 5.0 AUTH, scram.ts) is offered when built-in users exist;
 * an unknown name fails the exchange with 0x86 (no HTTP service: it needs the password);
 * it checks the rate limit when an exchange starts. A CONNECT with an
 * Authentication Method skips the hook above (the core runs the exchange).
 * With every `auth.*` key at its default no plugin is built: everyone is
 * accepted as before. Passwords are never logged.
 */
import type { AuthDecision, BrokerHooks, EnhancedAuthenticator } from "../broker/hooks.ts";
import type { MqttxConfig } from "../config/types.ts";
import { HttpAuthService, safeUrl } from "./http_service.ts";
import { ConnectRateLimiter } from "./rate_limit.ts";
import { scramAuthenticator } from "./scram.ts";
import { UserTable } from "./users.ts";
import { hashPassword, verifyPassword } from "./credential.ts";
import { escapeForLog } from "../log/escape.ts";

export { formatCredential, hashPassword, parseCredential, verifyPassword } from "./credential.ts";
export { SCRAM_METHOD } from "./scram.ts";

const BAD_CREDENTIALS = 0x86;
const NOT_AUTHORIZED = 0x87;
const SERVER_UNAVAILABLE = 0x88;
const RATE_EXCEEDED = 0x9f;

export interface AuthDeps {
  log: (line: string) => void;
  readTextFile: (path: string) => Promise<string>;
  /** Clock for the rate limit and cache (tests). */
  now?: () => number;
  /** SCRAM server nonce source (tests). */
  nonce?: () => string;
  /** HTTP client (tests); the global fetch by default. */
  fetch?: typeof fetch;
  /**
   * `ssl.use-cn-as-username`: a verified client certificate is the credential
   * (like Mosquitto's use_identity_as_username): no password is asked, and a
   * built-in user of the certificate's CN lends its topic rights.
   */
  certificateIdentity?: boolean;
}

export interface AuthPlugin {
  hooks: BrokerHooks;
  stop(): void;
  /** Re-reads `auth.password-file` (there only when one is set); true when the new one was taken. */
  reload?(): Promise<boolean>;
}

/** True when some `auth.*` key asks for checks; false means "accept everyone". */
export function authConfigured(auth: MqttxConfig["auth"]): boolean {
  return !auth.allowAnonymous || auth.users.length > 0 || auth.passwordFile !== undefined ||
    auth.url !== undefined || auth.connectRatePerMinute > 0;
}

/**
 * Build the plugin, or undefined when nothing is configured. Reads the
 * password file once; throws (and the broker does not start) on a bad file,
 * a plain-text password or a bad URL.
 */
export async function createAuthPlugin(
  auth: MqttxConfig["auth"],
  deps: AuthDeps,
): Promise<AuthPlugin | undefined> {
  if (!authConfigured(auth)) return undefined;
  const readFile = async (path: string) => ({
    path,
    text: await deps.readTextFile(path).catch((e) => {
      throw new Error(`auth.password-file: cannot read ${path}: ${e?.message ?? e}`);
    }),
  });
  const file = auth.passwordFile === undefined ? undefined : await readFile(auth.passwordFile);
  // Replaced whole by a reload; the hooks below read it at each CONNECT.
  let users = UserTable.from(auth.users, file, deps.now);
  if (auth.url !== undefined && !/^https?:$/.test(urlProtocol(auth.url))) {
    throw new Error(`auth.url must be an http:// or https:// URL, got ${JSON.stringify(auth.url)}`);
  }
  const http = auth.url === undefined
    ? undefined
    : new HttpAuthService(auth.url, auth.readTimeout, deps.fetch);
  const limiter = auth.connectRatePerMinute > 0
    ? new ConnectRateLimiter(auth.connectRatePerMinute, deps.now)
    : undefined;
  const builtIn = users.size > 0 || file !== undefined;
  const utf8 = new TextDecoder();
  const decoy = await hashPassword(crypto.getRandomValues(new Uint8Array(16)));

  const rateExceeded = (remoteAddr: string): (AuthDecision & { ok: false }) | undefined =>
    limiter && !limiter.take(remoteAddr) ? { ok: false, reasonCode: RATE_EXCEEDED } : undefined;
  // An anonymous acceptance drops any user name the client claimed: nothing verified it, so
  // ACL rules, %u and $SYS must not see it.
  const anonymous = (): AuthDecision =>
    auth.allowAnonymous ? { ok: true, anonymous: true } : { ok: false, reasonCode: NOT_AUTHORIZED };

  const authenticators: EnhancedAuthenticator[] = !builtIn ? [] : [
    scramAuthenticator({
      lookup: (name) => users.get(name),
      nonce: deps.nonce,
      admit: (client) => rateExceeded(client.remoteAddr),
    }),
  ];

  const hooks: BrokerHooks = {
    authenticators,
    authenticate(client, connect) {
      const limited = rateExceeded(client.remoteAddr);
      if (limited) return limited;
      const cn = client.certificate?.commonName;
      if (deps.certificateIdentity && cn) {
        const user = users.get(cn);
        return {
          ok: true,
          username: cn,
          authorizedSub: user?.authorizedSub,
          authorizedPub: user?.authorizedPub,
        };
      }
      const username = connect.username;
      if (username === undefined) return anonymous();
      const user = users.get(username);
      if (user) {
        // No password: still pay one derivation, or the quick refusal tells that the name exists.
        const given = connect.password;
        return users.verify(user, given ?? new Uint8Array()).then((ok): AuthDecision =>
          ok && given !== undefined
            ? {
              ok: true,
              username,
              authorizedSub: user.authorizedSub,
              authorizedPub: user.authorizedPub,
            }
            : { ok: false, reasonCode: BAD_CREDENTIALS }
        );
      }
      if (http) {
        const password = connect.password ? utf8.decode(connect.password) : "";
        return http.ask({ clientId: client.clientId, username, password }).then((r) => {
          if (r.kind === "accept") {
            return {
              ok: true,
              username,
              authorizedSub: r.authorizedSub,
              authorizedPub: r.authorizedPub,
            };
          }
          if (r.kind === "refuse") return { ok: false, reasonCode: BAD_CREDENTIALS };
          deps.log(
            `auth: HTTP service ${safeUrl(http.url)} failed for client ${
              escapeForLog(client.clientId)
            } ` +
              `(${r.message}); ${auth.isMandatory ? "refused" : "treated as anonymous"}`,
          );
          return auth.isMandatory ? { ok: false, reasonCode: SERVER_UNAVAILABLE } : anonymous();
        });
      }
      if (!builtIn) return anonymous();
      // Pay for one derivation anyway, so the answer's timing does not tell which names exist.
      return verifyPassword(decoy, connect.password ?? new Uint8Array())
        .then((): AuthDecision => ({ ok: false, reasonCode: BAD_CREDENTIALS }));
    },
  };
  const passwordFile = auth.passwordFile;
  /** SIGHUP: read the password file again. A bad file keeps the users there were. */
  const reload = passwordFile === undefined ? undefined : async (): Promise<boolean> => {
    try {
      users = UserTable.from(auth.users, await readFile(passwordFile), deps.now);
    } catch (e) {
      deps.log(`${e instanceof Error ? e.message : e}; keeping the users read before`);
      return false;
    }
    deps.log(`auth.password-file reloaded (${users.size} users); connected clients stay`);
    return true;
  };
  return { hooks, stop: () => http?.stop(), reload };
}

function urlProtocol(url: string): string {
  try {
    return new URL(url).protocol;
  } catch {
    return "";
  }
}
