/**
 * The topic rules of one bridge, as Mosquitto's `topic` lines: a rule
 * `{ filter, direction, qos, local-prefix, remote-prefix }` bridges the local
 * topics `local-prefix + filter` to the remote topics `remote-prefix + filter`.
 * Out: a local message on `local-prefix/x` goes up as `remote-prefix/x`;
 * in: the bridge subscribes upstream to `remote-prefix + filter` and publishes
 * what arrives locally as `local-prefix/x`. `qos` is the highest QoS used:
 * a message travels at the lower of its own QoS and the rule's.
 */
import type { QoS } from "../mqtt/packet.ts";
import { type Levels, levels, matchesTopic } from "../acl/filters.ts";

export type BridgeDirection = "out" | "in" | "both";

export interface BridgeTopicRule {
  filter: string;
  direction: BridgeDirection;
  qos: QoS;
  localPrefix: string;
  remotePrefix: string;
}

interface CompiledRule {
  rule: BridgeTopicRule;
  local: Levels;
  remote: Levels;
}

export interface Mapped {
  topic: string;
  qos: QoS;
}

export class BridgeTopics {
  private readonly outRules: CompiledRule[];
  private readonly inRules: CompiledRule[];

  constructor(readonly rules: readonly BridgeTopicRule[]) {
    const compiled = rules.map((rule) => ({
      rule,
      local: levels(rule.localPrefix + rule.filter),
      remote: levels(rule.remotePrefix + rule.filter),
    }));
    this.outRules = compiled.filter((c) => c.rule.direction !== "in");
    this.inRules = compiled.filter((c) => c.rule.direction !== "out");
  }

  get hasOut(): boolean {
    return this.outRules.length > 0;
  }

  /** Upstream subscriptions for the in/both rules. */
  subscriptions(): { filter: string; qos: QoS }[] {
    return this.inRules.map((c) => ({
      filter: c.rule.remotePrefix + c.rule.filter,
      qos: c.rule.qos,
    }));
  }

  /** A local message's remote topic and QoS, or undefined when no out rule takes it (first wins). */
  outbound(topic: string, qos: QoS, topicLevels: Levels = levels(topic)): Mapped | undefined {
    return map(this.outRules, topic, topicLevels, qos, "localPrefix", "remotePrefix");
  }

  /** An upstream message's local topic and QoS, or undefined when no in rule takes it. */
  inbound(topic: string, qos: QoS): Mapped | undefined {
    return map(this.inRules, topic, levels(topic), qos, "remotePrefix", "localPrefix");
  }
}

function map(
  rules: CompiledRule[],
  topic: string,
  topicLevels: Levels,
  qos: QoS,
  from: "localPrefix" | "remotePrefix",
  to: "localPrefix" | "remotePrefix",
): Mapped | undefined {
  for (const c of rules) {
    const filter = from === "localPrefix" ? c.local : c.remote;
    // `a/#` also matches `a`, which does not carry the whole prefix `a/`: not bridged.
    if (!matchesTopic(filter, topicLevels) || !topic.startsWith(c.rule[from])) continue;
    const rest = topic.slice(c.rule[from].length);
    return { topic: c.rule[to] + rest, qos: Math.min(qos, c.rule.qos) as QoS };
  }
  return undefined;
}
