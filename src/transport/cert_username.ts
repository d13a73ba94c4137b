/**
 * `ssl.use-cn-as-username`: a client that presented a verified certificate is
 * known by its subject CN. The hook runs first in the authenticate chain and
 * has no opinion of its own (returns undefined): it only sets the username
 * the later hooks (auth, ACL, $SYS) see. Clients without a certificate keep
 * the username from their CONNECT. Runtime-free.
 */
import type { BrokerHooks } from "../broker/hooks.ts";

export function certificateUsernameHook(): BrokerHooks {
  return {
    authenticate(client) {
      const cn = client.certificate?.commonName;
      if (cn !== undefined && cn !== "") Object.assign(client, { username: cn });
      return undefined;
    },
  };
}
