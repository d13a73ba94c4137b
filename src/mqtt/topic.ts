/**
 * Topic name and topic filter rules (MQTT 3.1.1 section 4.7, MQTT 5 section 4.7 and 4.8.2).
 * Pure functions; the fast matchers live in broker/topic_index.ts and store/retained_index.ts.
 */

const SHARE_PREFIX = "$share/";

/** undefined if `topic` is a valid topic name (as used in PUBLISH), else a reason. */
export function topicNameError(topic: string): string | undefined {
  // [MQTT-4.7.3-1] topic names must be at least one character long.
  if (topic.length === 0) return "is empty";
  // [MQTT-4.7.3-2] no U+0000.
  if (topic.includes("\u0000")) return "contains U+0000";
  // [MQTT-3.3.2-2] the topic name in a PUBLISH must not contain wildcards.
  if (topic.includes("+") || topic.includes("#")) return "contains a wildcard";
  return undefined;
}

/** undefined if `filter` is a valid topic filter (plain or `$share/{group}/{filter}`), else a reason. */
export function topicFilterError(filter: string): string | undefined {
  if (filter.length === 0) return "is empty"; // [MQTT-4.7.3-1]
  if (filter.includes("\u0000")) return "contains U+0000"; // [MQTT-4.7.3-2]
  if (filter.startsWith(SHARE_PREFIX)) {
    const slash = filter.indexOf("/", SHARE_PREFIX.length);
    if (slash < 0) return "is a shared subscription without a topic filter";
    const group = filter.slice(SHARE_PREFIX.length, slash);
    // [MQTT-4.8.2-1] ShareName is at least one character, without '/', '+' or '#'.
    if (group.length === 0) return "has an empty share name";
    if (group.includes("+") || group.includes("#")) return "has a wildcard in its share name";
    const inner = filter.slice(slash + 1);
    // [MQTT-4.8.2-2] a shared subscription must contain a topic filter after the share name.
    if (inner.length === 0) return "is a shared subscription without a topic filter";
    return plainFilterError(inner);
  }
  return plainFilterError(filter);
}

function plainFilterError(filter: string): string | undefined {
  const levels = filter.split("/");
  for (let i = 0; i < levels.length; i++) {
    const level = levels[i];
    if (level.includes("#")) {
      // [MQTT-4.7.1-2] '#' must occupy a whole level and be the last character of the filter.
      if (level !== "#" || i !== levels.length - 1) return "has '#' not alone at the last level";
    }
    // [MQTT-4.7.1-3] '+' must occupy an entire level.
    if (level.includes("+") && level !== "+") return "has '+' not alone in its level";
  }
  return undefined;
}

export interface SharedFilter {
  group: string;
  filter: string;
}

/** For "$share/g/a/b" → {group:"g", filter:"a/b"}; undefined when not a shared filter. Assumes validity. */
export function parseShared(filter: string): SharedFilter | undefined {
  if (!filter.startsWith(SHARE_PREFIX)) return undefined;
  const slash = filter.indexOf("/", SHARE_PREFIX.length);
  if (slash < 0) return undefined;
  return { group: filter.slice(SHARE_PREFIX.length, slash), filter: filter.slice(slash + 1) };
}

/** True when the filter contains '+' or '#' (so it can match more than one topic). */
export function isWildcardFilter(filter: string): boolean {
  return filter.includes("+") || filter.includes("#");
}

/**
 * Reference matcher: slow but obviously right; tests compare the indexes against it.
 * `filter` must be a valid plain filter and `topic` a valid topic name.
 */
export function topicMatches(filter: string, topic: string): boolean {
  const f = filter.split("/");
  const t = topic.split("/");
  // [MQTT-4.7.2-1] a filter starting with a wildcard does not match topics starting with '$'.
  if (topic.startsWith("$") && (f[0] === "+" || f[0] === "#")) return false;
  for (let i = 0; i < f.length; i++) {
    // [MQTT-4.7.1-2] '#' matches the parent level and any number of child levels.
    if (f[i] === "#") return true;
    if (i >= t.length) return false;
    // [MQTT-4.7.1-3] '+' matches exactly one level, which may be empty.
    if (f[i] !== "+" && f[i] !== t[i]) return false;
  }
  return f.length === t.length;
}
