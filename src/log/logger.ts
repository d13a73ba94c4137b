/**
 * The broker's log: `log.level` (error, warn, info, debug) and `log.format`.
 *
 * - `text`: one line per event, as the broker always wrote them: the `msg`
 *   field when there is one, else the event name, then the other fields as
 *   `key=value`, each value escaped (escapeForLog) so a client-supplied
 *   string cannot forge a line.
 * - `json`: one object per line: `time` (ISO 8601, UTC), `level`, `event`,
 *   then the fields (`clientId`, `address`, `msg`, ...). Values are
 *   JSON-escaped, which neutralizes control characters too.
 *
 * Callers that build costly fields check `enabled(level)` first.
 */
import { escapeForLog } from "./escape.ts";

export type LogLevel = "error" | "warn" | "info" | "debug";
export type LogFormat = "text" | "json";

export type LogFields = Record<string, string | number | boolean | undefined>;

export interface Logger {
  readonly level: LogLevel;
  readonly format: LogFormat;
  enabled(level: LogLevel): boolean;
  log(level: LogLevel, event: string, fields?: LogFields): void;
  error(event: string, fields?: LogFields): void;
  warn(event: string, fields?: LogFields): void;
  info(event: string, fields?: LogFields): void;
  debug(event: string, fields?: LogFields): void;
}

export interface LoggerOptions {
  level?: LogLevel;
  format?: LogFormat;
  /** Where finished lines go (default: console.log). */
  write?: (line: string) => void;
  /** Clock (tests). */
  now?: () => Date;
}

const RANK: Record<LogLevel, number> = { error: 0, warn: 1, info: 2, debug: 3 };

// JSON.stringify escapes C0 controls; these it leaves as they are.
const JSON_UNSAFE = /[\u007f-\u009f\u2028\u2029]/g;

export function createLogger(opts: LoggerOptions = {}): Logger {
  const level = opts.level ?? "info";
  const format = opts.format ?? "text";
  const write = opts.write ?? ((line: string) => console.log(line));
  const now = opts.now ?? (() => new Date());
  const max = RANK[level];
  const log = (l: LogLevel, event: string, fields?: LogFields) => {
    if (RANK[l] > max) return;
    write(format === "json" ? jsonLine(now(), l, event, fields) : textLine(event, fields));
  };
  return {
    level,
    format,
    enabled: (l) => RANK[l] <= max,
    log,
    error: (event, fields) => log("error", event, fields),
    warn: (event, fields) => log("warn", event, fields),
    info: (event, fields) => log("info", event, fields),
    debug: (event, fields) => log("debug", event, fields),
  };
}

/** A logger that writes nothing (quiet tests, embedding without a log). */
export const silentLogger: Logger = createLogger({ level: "error", write: () => {} });

function textLine(event: string, fields: LogFields | undefined): string {
  let line = fields?.msg !== undefined ? String(fields.msg) : event;
  if (fields) {
    for (const key in fields) {
      const v = fields[key];
      if (key === "msg" || v === undefined) continue;
      line += ` ${key}=${typeof v === "string" ? escapeForLog(v) : v}`;
    }
  }
  return line;
}

function jsonLine(time: Date, level: LogLevel, event: string, fields: LogFields | undefined) {
  const record: Record<string, unknown> = { time: time.toISOString(), level, event };
  if (fields) {
    for (const key in fields) {
      if (key !== "time" && key !== "level" && key !== "event") record[key] = fields[key];
    }
  }
  return JSON.stringify(record).replace(
    JSON_UNSAFE,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`,
  );
}
