/** The "did you mean" reason for an unknown configuration key. */
import { kebab, normalizeKey, type Section } from "./schema.ts";

export function unknownKeyReason(written: string, section: Section, path: string): string {
  const names = Object.keys(section);
  const target = normalizeKey(written);
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const name of names) {
    const d = editDistance(target, normalizeKey(name));
    if (d < bestDistance) [best, bestDistance] = [name, d];
  }
  const didYouMean = (what: string) => `unknown key \`${written}\`; did you mean ${what}?`;
  if (best !== undefined && bestDistance <= 1) return didYouMean(`\`${kebab(best)}\``);
  // An item put one level too high, e.g. `port:` straight under `mqttx:`.
  const nested = names.flatMap((name) => {
    const f = section[name];
    if (f.kind !== "section") return [];
    const inner = Object.keys(f.fields).find((n) => normalizeKey(n) === target);
    return inner ? [`\`${kebab(name)}.${kebab(inner)}\``] : [];
  });
  if (nested.length > 0) return didYouMean(nested.join(" or "));
  if (best !== undefined && bestDistance <= Math.max(2, Math.floor(target.length / 3))) {
    return didYouMean(`\`${kebab(best)}\``);
  }
  return `unknown key \`${written}\` (known keys under ${path}: ${names.map(kebab).join(", ")})`;
}

function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      row[j] = Math.min(prev[j] + 1, row[j - 1] + 1, prev[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = row;
  }
  return prev[b.length];
}
