/**
 * YAML text → validated MqttxConfig. Items live under a top-level `mqttx:` key
 * as in the original's Spring `application.yml`; other top-level keys
 * (`spring:`, `server:`, `logging:` ...) are ignored so an old file loads.
 * A file without `mqttx:` whose top level holds mqttx items (`socket:`,
 * `enable-test-mode:` ...) is read as the mqttx section itself.
 * Every refusal is a ConfigError naming file, line, key path and reason.
 */
import { Document, isAlias, isMap, isScalar, isSeq, LineCounter, parseDocument } from "yaml";
import type { Node, YAMLMap } from "yaml";
import { parseDuration } from "./duration.ts";
import { ConfigError } from "./errors.ts";
import { dirname, isAbsolute, join } from "node:path";
import {
  defaultConfig,
  type Field,
  kebab,
  normalizeKey,
  ROOT,
  SCHEMA,
  type Section,
} from "./schema.ts";
import { unknownKeyReason } from "./suggest.ts";
import type { MqttxConfig } from "./types.ts";
import { checkCombinations } from "./combinations.ts";

export { ConfigError } from "./errors.ts";

/** Top-level keys of a Spring Boot application.yml, ignored in a file without `mqttx:`. */
const FOREIGN_TOP_KEYS = new Set(
  ["spring", "server", "logging", "management", "info", "debug", "trace", "biz"].map(normalizeKey),
);

/** Parses and validates `text`; `fileName` only labels error messages. */
export function parseConfig(text: string, fileName: string): MqttxConfig {
  return parseConfigReport(text, fileName).config;
}

/** parseConfig, plus the keys of the original mqttx that were accepted but mean nothing here. */
export function parseConfigReport(
  text: string,
  fileName: string,
): { config: MqttxConfig; ignored: string[] } {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false });
  const ignored: string[] = [];
  const ctx: Ctx = { file: fileName, doc, lineCounter, ignored };
  const config = readConfig(ctx);
  return { config, ignored };
}

/** The one start-up line naming the ignored keys; undefined when there are none. */
export function ignoredKeysLine(ignored: readonly string[]): string | undefined {
  if (ignored.length === 0) return undefined;
  return `mqttx: ignoring keys of the original mqttx that have no effect here: ${
    ignored.join(", ")
  }`;
}

function readConfig(ctx: Ctx): MqttxConfig {
  const { doc, lineCounter, file: fileName } = ctx;
  if (doc.errors.length > 0) {
    const e = doc.errors[0];
    const reason = `YAML syntax error: ${e.message.split("\n")[0]}`;
    throw new ConfigError({ file: fileName, line: lineCounter.linePos(e.pos[0]).line, reason });
  }
  const config = defaultConfig() as unknown as Record<string, unknown>;
  const top = resolve(ctx, doc.contents);
  if (top === null || isEmptyScalar(top)) return config as unknown as MqttxConfig;
  if (!isMap(top)) throw fail(ctx, top, undefined, `expected a mapping at the top level`);

  const rootPair = top.items.find((p) =>
    keyText(p.key) !== undefined &&
    normalizeKey(keyText(p.key)!) === ROOT
  );
  if (rootPair) {
    const section = resolve(ctx, rootPair.value as Node | null);
    if (section === null || isEmptyScalar(section)) return config as unknown as MqttxConfig;
    if (!isMap(section)) throw fail(ctx, section, ROOT, "expected a mapping of mqttx items");
    readSection(ctx, section, SCHEMA, config, ROOT, new Set());
  } else {
    const known = new Set(Object.keys(SCHEMA).map(normalizeKey));
    const flat = top.items.some((p) => known.has(normalizeKey(keyText(p.key) ?? "")));
    if (flat) readSection(ctx, top, SCHEMA, config, ROOT, FOREIGN_TOP_KEYS);
    else {
      // A misspelled root (`mqtx:`) must not load silently as the defaults: that would turn
      // security settings off. Only the known Spring keys may stand beside nothing.
      const stray = top.items.find((p) =>
        !FOREIGN_TOP_KEYS.has(normalizeKey(keyText(p.key) ?? ""))
      );
      if (stray) {
        throw fail(
          ctx,
          stray.key as Node,
          keyText(stray.key),
          "unknown top-level key: mqttx items go under `mqttx:`",
        );
      }
    }
  }
  const result = config as unknown as MqttxConfig;
  checkCombinations({ file: ctx.file, lineOf: (names) => lineOfPath(ctx, names) }, result);
  // The SQLite file lives beside the config file unless an absolute path is given.
  const db = result.store.path;
  if (!isAbsolute(db)) result.store.path = join(dirname(fileName), db);
  return result;
}

/** A field that holds a value (not a section, nor a key accepted for compatibility only). */
type ValueField = Exclude<Field, { kind: "section" | "ignored" | "alias" }>;

interface Ctx {
  file: string;
  doc: Document;
  lineCounter: LineCounter;
  /** Key paths of `ignored` fields met so far. */
  ignored: string[];
}

function readSection(
  ctx: Ctx,
  map: YAMLMap,
  section: Section,
  target: Record<string, unknown>,
  path: string,
  ignored: ReadonlySet<string>,
): void {
  const byNorm = new Map(Object.keys(section).map((name) => [normalizeKey(name), name]));
  const seen = new Map<string, string>();
  for (const pair of map.items) {
    const keyNode = pair.key as Node;
    const written = keyText(keyNode);
    if (written === undefined) throw fail(ctx, keyNode, path, "expected a plain text key");
    let name = byNorm.get(normalizeKey(written));
    if (name === undefined) {
      if (ignored.has(normalizeKey(written))) continue;
      throw fail(ctx, keyNode, `${path}.${written}`, unknownKeyReason(written, section, path));
    }
    const declared = section[name];
    if (declared.kind === "ignored") {
      ctx.ignored.push(`${path}.${kebab(name)}`);
      continue;
    }
    if (declared.kind === "alias") name = declared.of;
    const keyPath = `${path}.${kebab(name)}`;
    if (seen.has(name)) {
      throw fail(ctx, keyNode, keyPath, `duplicate key (also written as \`${seen.get(name)}\`)`);
    }
    seen.set(name, written);
    const value = resolve(ctx, pair.value as Node | null);
    // An empty value (`key:`) keeps the default, as an unset Spring property would.
    if (value === null || isEmptyScalar(value)) continue;
    const field = section[name];
    if (field.kind === "section") {
      if (!isMap(value)) throw fail(ctx, value, keyPath, "expected a mapping");
      readSection(
        ctx,
        value,
        field.fields,
        target[name] as Record<string, unknown>,
        keyPath,
        new Set(),
      );
    } else {
      if (field.kind === "ignored" || field.kind === "alias") continue; // an alias of an alias
      target[name] = readValue(ctx, value, field, keyPath);
    }
  }
}

function readValue(
  ctx: Ctx,
  node: Node,
  field: ValueField,
  path: string,
) {
  const bad = (reason: string) => fail(ctx, node, path, reason);
  switch (field.kind) {
    case "string": {
      const s = scalarString(node);
      if (s === undefined) throw bad(`expected a string, got ${describe(node)}`);
      const why = field.check?.(s);
      if (why) throw bad(why);
      return s;
    }
    case "int": {
      const v = isScalar(node) ? node.value : undefined;
      const n = typeof v === "string" && /^-?\d+$/.test(v.trim()) ? Number(v) : v;
      if (typeof n !== "number" || !Number.isInteger(n) || n < field.min || n > field.max) {
        const range = field.max >= 2_147_483_647
          ? `an integer of at least ${field.min}`
          : `an integer from ${field.min} to ${field.max}`;
        throw bad(`expected ${range}, got ${describe(node)}`);
      }
      return n;
    }
    case "bool": {
      const v = isScalar(node) ? node.value : undefined;
      if (typeof v === "boolean") return v;
      if (typeof v === "string" && /^(true|false)$/i.test(v)) return v.toLowerCase() === "true";
      throw bad(`expected true or false, got ${describe(node)}`);
    }
    case "duration": {
      const v = isScalar(node) ? node.value : undefined;
      if (typeof v !== "string" && typeof v !== "number") {
        throw bad(`expected a duration such as 60s, got ${describe(node)}`);
      }
      let ms: number;
      try {
        ms = parseDuration(v);
      } catch (e) {
        throw bad((e as Error).message);
      }
      if (ms === 0) throw bad(`expected a duration greater than 0, got ${describe(node)}`);
      return ms;
    }
    case "enum": {
      const v = isScalar(node) ? node.value : undefined;
      if (typeof v === "boolean" && field.fromBool) {
        return v ? field.fromBool.true : field.fromBool.false;
      }
      const hit = typeof v === "string"
        ? field.values.find((x) => x.toLowerCase() === v.trim().toLowerCase())
        : undefined;
      if (hit === undefined) {
        const choices = field.values.join(", ") + (field.fromBool ? ", true, false" : "");
        throw bad(`expected one of ${choices}, got ${describe(node)}`);
      }
      return hit;
    }
    case "strings":
      return readStrings(ctx, node, field.check, path);
    case "records":
      return readRecords(ctx, node, field, path);
  }
}

/** A YAML list, or a comma-separated string as Spring also accepts. */
function readStrings(
  ctx: Ctx,
  node: Node,
  check: ((s: string) => string | undefined) | undefined,
  path: string,
) {
  const items: [Node, string][] = [];
  if (isSeq(node)) {
    node.items.forEach((raw, i) => {
      const item = resolve(ctx, raw as Node | null) ?? node;
      const s = scalarString(item);
      if (s === undefined) {
        throw fail(ctx, item, `${path}[${i}]`, `expected a string, got ${describe(item)}`);
      }
      items.push([item, s]);
    });
  } else {
    const s = scalarString(node);
    if (s === undefined) {
      throw fail(ctx, node, path, `expected a list of strings, got ${describe(node)}`);
    }
    for (const part of s.split(",")) if (part.trim() !== "") items.push([node, part.trim()]);
  }
  return items.map(([item, s], i) => {
    const why = check?.(s);
    if (why) throw fail(ctx, item, `${path}[${i}]`, why);
    return s;
  });
}

function readRecords(
  ctx: Ctx,
  node: Node,
  field: Extract<Field, { kind: "records" }>,
  path: string,
): Record<string, unknown>[] {
  const short = field.shorthand;
  if (short !== undefined && !isSeq(node)) {
    const item = field.item[short] as ValueField;
    return readStrings(ctx, node, (s) => item.kind === "string" ? item.check?.(s) : undefined, path)
      .map((s) => ({ ...field.defaults, [short]: s }));
  }
  if (!isSeq(node)) throw fail(ctx, node, path, `expected a list, got ${describe(node)}`);
  return node.items.map((raw, i): Record<string, unknown> => {
    const itemPath = `${path}[${i}]`;
    const item = resolve(ctx, raw as Node | null);
    if (short !== undefined && item !== null && isScalar(item)) {
      const f = field.item[short] as ValueField;
      return { ...field.defaults, [short]: readValue(ctx, item, f, itemPath) };
    }
    if (item === null || !isMap(item)) {
      throw fail(
        ctx,
        item ?? node,
        itemPath,
        `expected a mapping, got ${item ? describe(item) : "nothing"}`,
      );
    }
    const record: Record<string, unknown> = { ...field.defaults };
    readSection(ctx, item, field.item, record, itemPath, new Set());
    for (const name of field.required) {
      if (record[name] === undefined) {
        throw fail(ctx, item, itemPath, `missing required key \`${kebab(name)}\``);
      }
    }
    return record;
  });
}

/** Line of a key under the mqttx section (or the flat top level), for cross-field errors. */
function lineOfPath(ctx: Ctx, names: (string | number)[]): number | undefined {
  let node = resolve(ctx, ctx.doc.contents);
  const rootPair = isMap(node) ? findPair(node, ROOT) : undefined;
  if (rootPair) node = resolve(ctx, rootPair.value as Node | null);
  let line: number | undefined;
  for (const name of names) {
    if (typeof name === "number") {
      // A list index: the item itself.
      if (!isSeq(node) || !node.items[name]) return line;
      node = resolve(ctx, node.items[name] as Node | null);
      line = lineOf(ctx, node);
      continue;
    }
    const pair = isMap(node) ? findPair(node, name) : undefined;
    if (!pair) return line;
    line = lineOf(ctx, pair.key as Node);
    node = resolve(ctx, pair.value as Node | null);
  }
  return line;
}

function findPair(map: YAMLMap, name: string) {
  return map.items.find((p) => normalizeKey(keyText(p.key) ?? "") === normalizeKey(name));
}

/** Follows `*alias` references to the node they name. */
function resolve(ctx: Ctx, node: Node | null | undefined): Node | null {
  if (node === null || node === undefined) return null;
  if (isAlias(node)) return (node.resolve(ctx.doc) as Node | undefined) ?? null;
  return node;
}

function isEmptyScalar(node: Node): boolean {
  return isScalar(node) && node.value === null;
}

function keyText(key: unknown): string | undefined {
  if (!isScalar(key)) return undefined;
  return typeof key.value === "string" ? key.value : key.source ?? String(key.value);
}

/** A scalar as text; numbers keep their written form (`version: 1.10` is "1.10"). */
function scalarString(node: Node): string | undefined {
  if (!isScalar(node)) return undefined;
  const v = node.value;
  if (typeof v === "string") return v;
  if (typeof v === "number" || typeof v === "bigint") return node.source ?? String(v);
  return undefined;
}

function describe(node: Node): string {
  if (isMap(node)) return "a mapping";
  if (isSeq(node)) return "a list";
  if (isScalar(node)) {
    // Strings quoted, so `port: "80"` and `port: 80x` read clearly in the message.
    return typeof node.value === "string"
      ? JSON.stringify(node.value)
      : node.source ?? String(node.value);
  }
  return "an unsupported value";
}

function lineOf(ctx: Ctx, node: Node | null | undefined): number | undefined {
  const offset = node?.range?.[0];
  return offset === undefined ? undefined : ctx.lineCounter.linePos(offset).line;
}

function fail(ctx: Ctx, node: Node | null | undefined, key: string | undefined, reason: string) {
  return new ConfigError({ file: ctx.file, line: lineOf(ctx, node), key, reason });
}
