/**
 * Topic filter algebra for authorization: does a filter match a topic, does a
 * rule's filter cover a requested filter, and `%c`/`%u` placeholders. Filters are handled as arrays of levels.
 *
 *   covers("a/#", "a/b/+")  true    every topic of a/b/+ is in a/#
 *   covers("a/+", "a/#")    false   a/# also matches a and a/b/c
 *   covers("#", "$SYS/x")   false   a leading wildcard never reaches `$` topics [MQTT-4.7.2-1]
 */

export type Levels = readonly string[];

/** Who a placeholder stands for. */
export interface PlaceholderValues {
  readonly clientId: string;
  readonly username?: string;
}

/** Levels of a topic filter or topic name. */
export function levels(s: string): string[] {
  return s.split("/");
}

/** True when the levels form a well-shaped filter: '#' alone and last, '+' alone. */
export function wellFormed(f: Levels): boolean {
  for (let i = 0; i < f.length; i++) {
    const l = f[i];
    if (l.includes("#") && (l !== "#" || i !== f.length - 1)) return false;
    if (l.includes("+") && l !== "+") return false;
    if (l.includes("\u0000")) return false;
  }
  return f.length > 0 && !(f.length === 1 && f[0] === "");
}

const wild = (l: string | undefined) => l === "+" || l === "#";
const dollar = (l: string | undefined) => l !== undefined && l.startsWith("$");

/** Does filter `f` match topic `t` (MQTT rules)? */
export function matchesTopic(f: Levels, t: Levels): boolean {
  // [MQTT-4.7.2-1] a filter starting with a wildcard does not match topics starting with '$'.
  if (wild(f[0]) && dollar(t[0])) return false;
  for (let i = 0; i < f.length; i++) {
    if (f[i] === "#") return true; // '#' also matches the parent level [MQTT-4.7.1-2]
    if (i >= t.length) return false;
    if (f[i] !== "+" && f[i] !== t[i]) return false;
  }
  return f.length === t.length;
}

/**
 * Does the allowed filter `a` match every topic the requested filter `r`
 * matches? (So subscribing to `r` can never deliver a topic outside `a`.)
 */
export function covers(a: Levels, r: Levels): boolean {
  if (wild(a[0]) && dollar(r[0])) return false;
  for (let i = 0; i < r.length; i++) {
    const al = a[i];
    if (al === "#") return true;
    if (al === undefined) return false; // r is longer: it reaches topics a does not
    const rl = r[i];
    if (rl === "#") return false; // only '#' covers '#' (it matches any depth, incl. the parent)
    if (al === "+") continue; // '+' covers a literal level or '+'
    if (rl !== al) return false; // a literal covers only the same literal
  }
  // Same depth, or a ends in '#' one level deeper ('a/#' covers 'a').
  return a.length === r.length || (a.length === r.length + 1 && a[r.length] === "#");
}

/**
 * The ways a SUBSCRIBE filter is checked: the filter itself, and for
 * `$share/{group}/{f}` also the inner `f`.
 */
export function requestForms(filter: string): Levels[] {
  const full = levels(filter);
  if (full[0] === "$share" && full.length >= 3) return [full, full.slice(2)];
  return [full];
}

/** True if the filter uses `%c` or `%u`. */
export function hasPlaceholders(filter: string): boolean {
  return filter.includes("%c") || filter.includes("%u");
}

/**
 * Replace `%c` (client id) and `%u` (username). Undefined when the filter
 * cannot apply to this client: `%u` without a username, or a value that would
 * change the filter's shape (contains `/`, `+` or `#`), so client `+` never
 * gets `devices/+/#` from `devices/%c/#`.
 */
export function expand(filter: string, who: PlaceholderValues): string | undefined {
  if (!hasPlaceholders(filter)) return filter;
  let out = "";
  for (let i = 0; i < filter.length; i++) {
    const ch = filter[i];
    const next = filter[i + 1];
    if (ch === "%" && (next === "c" || next === "u")) {
      const v = next === "c" ? who.clientId : who.username;
      // A value must stay one plain level: no wildcard, no separator, and no leading `$`
      // (a client id `$share` or `$SYS` must not reach shared or system topics).
      if (!v || /[/+#]/.test(v) || v.startsWith("$")) return undefined;
      out += v;
      i++;
    } else {
      out += ch;
    }
  }
  return out;
}

/** Expand placeholders and split; undefined when the result is not usable for this client. */
export function compile(filter: string, who: PlaceholderValues): Levels | undefined {
  const s = expand(filter, who);
  if (s === undefined) return undefined;
  const l = levels(s);
  return wellFormed(l) ? l : undefined;
}
