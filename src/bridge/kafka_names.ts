/**
 * Names between MQTT and Kafka: which bridged entry an MQTT topic falls under,
 * the Kafka topic it goes to, and the MQTT topic a Kafka record comes back on.
 * Pure functions; the bridge remembers answers per topic.
 */
import { type Levels, levels, matchesTopic } from "../acl/filters.ts";
import { topicNameError } from "../mqtt/topic.ts";

/** Kafka accepts [a-zA-Z0-9._-] in topic names, at most 249 characters. */
const KAFKA_ILLEGAL = /[^a-zA-Z0-9._-]/g;
const KAFKA_MAX = 249;

/**
 * The default Kafka topic of an MQTT topic: `/` becomes `.`, leading and
 * trailing separators are dropped, characters Kafka refuses become `_`.
 * `bridge/a` → `bridge.a`, `/x/y/` → `x.y`, `café/1` → `caf_.1`.
 */
export function defaultKafkaTopic(mqttTopic: string): string {
  let t = mqttTopic.replaceAll("/", ".").replace(/^\.+|\.+$/g, "").replace(KAFKA_ILLEGAL, "_");
  // "." and ".." are not valid names; an empty topic neither.
  if (t === "" || t === "." || t === "..") t = "_";
  return t.length > KAFKA_MAX ? t.slice(0, KAFKA_MAX) : t;
}

/** `{topic}` in a template is the default Kafka name; the result is made legal as well. */
export function kafkaTopicFor(template: string | undefined, mqttTopic: string): string {
  if (template === undefined) return defaultKafkaTopic(mqttTopic);
  const t = template.replaceAll("{topic}", defaultKafkaTopic(mqttTopic)).replace(
    KAFKA_ILLEGAL,
    "_",
  );
  return t.length > KAFKA_MAX ? t.slice(0, KAFKA_MAX) : t;
}

/**
 * The MQTT topic for a Kafka record: `{key}` is the record key, `{topic}` the
 * Kafka topic. Undefined when the result is not a valid MQTT topic name
 * (empty, or a key holding `+`, `#` or NUL): such a record cannot be routed.
 */
export function mqttTopicFor(
  template: string,
  kafkaTopic: string,
  key: string,
): string | undefined {
  const t = template.replaceAll("{key}", key).replaceAll("{topic}", kafkaTopic);
  // `$` topics belong to the broker ($SYS); a key must not reach them.
  if (topicNameError(t) !== undefined || t.startsWith("$")) return undefined;
  return t;
}

export interface BridgedEntry {
  readonly filter: string;
  readonly kafkaTopic?: string;
}

/**
 * Which entry (first match wins) an MQTT topic is bridged under, and the
 * Kafka topic it goes to; remembered per topic (bounded).
 */
export class TopicRoutes {
  private readonly entries: { levels: Levels; kafkaTopic?: string }[];
  private readonly known = new Map<string, string | null>();

  constructor(entries: readonly BridgedEntry[], private readonly remember = 4096) {
    this.entries = entries.map((e) => ({ levels: levels(e.filter), kafkaTopic: e.kafkaTopic }));
  }

  /** The Kafka topic for `mqttTopic`, or undefined when it is not bridged. */
  kafkaTopic(mqttTopic: string): string | undefined {
    const hit = this.known.get(mqttTopic);
    if (hit !== undefined) return hit ?? undefined;
    const t = levels(mqttTopic);
    const entry = this.entries.find((e) => matchesTopic(e.levels, t));
    const answer = entry ? kafkaTopicFor(entry.kafkaTopic, mqttTopic) : null;
    if (this.known.size >= this.remember) this.known.clear();
    this.known.set(mqttTopic, answer);
    return answer ?? undefined;
  }
}
