/**
 * Durations as people write them in config files, to milliseconds:
 * `500ms`, `60s`, `5m`, `1h`, `1d` (units case-insensitive, like Spring's
 * simple style), a bare integer meaning seconds (YAML `60` or `"60"`), and
 * ISO-8601 / Java `Duration` style `PT60S`, `PT1M30S`, `P1DT2H`, `PT0.5S`.
 */

const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

const SIMPLE = /^(\d+)\s*(ms|s|m|h|d)?$/i;
const ISO =
  /^P(?:(\d+(?:\.\d+)?)D)?(?:T(?:(\d+(?:\.\d+)?)H)?(?:(\d+(?:\.\d+)?)M)?(?:(\d+(?:\.\d+)?)S)?)?$/i;

/** Milliseconds for `input`, or a RangeError whose message says what is accepted. */
export function parseDuration(input: string | number): number {
  const ms = typeof input === "number" ? fromSeconds(input) : fromText(input.trim());
  if (ms === undefined || !Number.isSafeInteger(ms)) {
    throw new RangeError(
      `expected a duration such as 500ms, 60s, 5m, 1h, 1d, PT60S or a number of seconds, ` +
        `got ${JSON.stringify(input)}`,
    );
  }
  return ms;
}

function fromSeconds(n: number): number | undefined {
  return Number.isInteger(n) && n >= 0 ? n * 1000 : undefined;
}

function fromText(text: string): number | undefined {
  const simple = SIMPLE.exec(text);
  if (simple) return Number(simple[1]) * UNIT_MS[(simple[2] ?? "s").toLowerCase()];
  const iso = ISO.exec(text);
  // "P" and "PT" alone match the pattern but name no amount.
  if (!iso || text.length <= 1 || /T$/i.test(text)) return undefined;
  const [, d, h, m, s] = iso.map((x) => (x === undefined ? 0 : Number(x)));
  // Fractions are allowed in ISO; round to whole milliseconds.
  return Math.round(d * UNIT_MS.d + h * UNIT_MS.h + m * UNIT_MS.m + s * UNIT_MS.s);
}
