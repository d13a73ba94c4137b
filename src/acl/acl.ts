/**
 * Static ACL (`acl.enable`, `acl.default-policy`, `acl.rules`), for deployments
 * without an authentication service; what Mosquitto's acl_file users expect.
 *
 * Rules are tried in order; the first rule that applies decides, else the
 * default policy. A rule applies to a client when its `username` / `client-id`
 * (if given) equal the client's (anonymous clients only meet rules without a
 * username), its action covers the operation, and its topic:
 *
 * - PUBLISH (and the will at CONNECT): the rule's filter matches the topic.
 * - SUBSCRIBE: the rule's filter covers the requested filter (every topic the
 *   request can match is matched by the rule), for allow and deny rules alike:
 *   allow `a/#` applies to `a/+`; deny `secret/#` refuses `secret/+` and `secret`
 *   but not `#`, which goes on to the later rules. A broader filter that is
 *   accepted never delivers a denied topic: every message is checked again as it
 *   goes out (src/broker/read_rights.ts asks this hook with the topic name, which
 *   a rule covers exactly when it matches it).
 * - `$share/{group}/{f}` is checked as the full string and as `f`: a rule applies
 *   if it covers either.
 *
 * `%c` and `%u` in a rule's topic stand for the client id and username; a rule
 * using `%u` does not apply to a client without one. `#` and `+/...` never
 * reach `$SYS/...` or other `$` topics: write `$SYS/#` rules for those.
 */
import type { BrokerHooks, ClientInfo } from "../broker/hooks.ts";
import type { MqttxConfig } from "../config/types.ts";
import {
  compile,
  covers,
  hasPlaceholders,
  type Levels,
  levels,
  matchesTopic,
  requestForms,
} from "./filters.ts";

export type AclConfig = MqttxConfig["acl"];
type Rule = AclConfig["rules"][number];

interface CompiledRule {
  allow: boolean;
  publish: boolean;
  subscribe: boolean;
  username?: string;
  clientId?: string;
  topic: string;
  /** Pre-split when the topic has no placeholders. */
  fixed: Levels | undefined;
}

export function staticAcl(config: AclConfig): BrokerHooks {
  const rules = config.rules.map(compileRule);
  const defaultAllow = config.defaultPolicy !== "deny";
  // A deny rule whose %c/%u cannot expand (say a client id with '/') still applies, with
  // '+' for the placeholder: failing to expand must never make the ACL more permissive.
  const filterFor = (r: CompiledRule, client: ClientInfo) =>
    r.fixed ?? compile(r.topic, client) ??
      (r.allow ? undefined : compile(r.topic.replaceAll("%c", "+").replaceAll("%u", "+"), client));
  const appliesTo = (r: CompiledRule, client: ClientInfo) =>
    (r.username === undefined || r.username === client.username) &&
    (r.clientId === undefined || r.clientId === client.clientId);
  return {
    authorizePublish(client, topic) {
      const t = levels(topic);
      for (const r of rules) {
        if (!r.publish || !appliesTo(r, client)) continue;
        const f = filterFor(r, client);
        if (f && matchesTopic(f, t)) return r.allow;
      }
      return defaultAllow;
    },
    authorizeSubscribe(client, filter) {
      const forms = requestForms(filter);
      for (const r of rules) {
        if (!r.subscribe || !appliesTo(r, client)) continue;
        const f = filterFor(r, client);
        if (!f) continue;
        if (forms.some((q) => covers(f, q))) return r.allow;
      }
      return defaultAllow;
    },
  };
}

function compileRule(rule: Rule): CompiledRule {
  const action = rule.action ?? "both";
  return {
    allow: rule.permission === "allow",
    publish: action !== "subscribe",
    subscribe: action !== "publish",
    username: rule.username,
    clientId: rule.clientId,
    topic: rule.topic,
    fixed: hasPlaceholders(rule.topic) ? undefined : levels(rule.topic),
  };
}
