/**
 * `enable-topic-sub-pub-secure`: each client's `authorizedSub`/`authorizedPub`
 * (set by authentication: the HTTP service or the users file) limit what it may
 * subscribe to and publish. The original mqttx's topic security.
 *
 * - A SUBSCRIBE filter is allowed when an allowed filter covers it: every topic
 *   the request can match is matched by the allowed filter (`a/#` covers `a/b/+`;
 *   `a/+` does not cover `a/#`; `#` does not cover `$SYS/...`).
 * - `$share/{group}/{f}` is allowed when the full string or the inner `f` is
 *   covered, so `a/#` allows `$share/g/a/b`, and `$share/g1/a/#` allows only group g1.
 * - A PUBLISH topic (and a will topic) is allowed when an allowed filter matches it.
 * - `%c` and `%u` in a list stand for the client id and username (see filters.ts).
 * - A client without a list (nobody authenticated it, or the service gave none)
 *   may do nothing of that kind: deny.
 */
import type { BrokerHooks, ClientInfo } from "../broker/hooks.ts";
import { compile, covers, type Levels, levels, matchesTopic, requestForms } from "./filters.ts";

interface Compiled {
  source: string[] | undefined;
  filters: Levels[];
}

export function topicAuthorization(): BrokerHooks {
  // Per connection, compiled once; recompiled if re-authentication replaced the list.
  const subs = new WeakMap<ClientInfo, Compiled>();
  const pubs = new WeakMap<ClientInfo, Compiled>();
  const compiled = (
    cache: WeakMap<ClientInfo, Compiled>,
    client: ClientInfo,
    source: string[] | undefined,
  ): Levels[] | undefined => {
    if (!source) return undefined;
    let c = cache.get(client);
    if (!c || c.source !== source) {
      const filters: Levels[] = [];
      for (const f of source) {
        const l = typeof f === "string" ? compile(f, client) : undefined;
        if (l) filters.push(l);
      }
      c = { source, filters };
      cache.set(client, c);
    }
    return c.filters;
  };
  return {
    authorizeSubscribe(client, filter) {
      const allowed = compiled(subs, client, client.authorizedSub);
      if (!allowed) return false;
      const forms = requestForms(filter);
      return allowed.some((a) => forms.some((r) => covers(a, r)));
    },
    authorizePublish(client, topic) {
      const allowed = compiled(pubs, client, client.authorizedPub);
      if (!allowed) return false;
      const t = levels(topic);
      return allowed.some((a) => matchesTopic(a, t));
    },
  };
}
