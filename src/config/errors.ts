/**
 * The one error a bad configuration file produces. Its message is meant for
 * the person editing the file: `config.yml:7: mqttx.socket.port: expected an
 * integer from 0 to 65535, got "abc"`.
 */
export class ConfigError extends Error {
  /** Kebab-case key path such as `mqttx.socket.port`; undefined for a YAML syntax error. */
  readonly key: string | undefined;
  /** 1-based line in `file`, when known. */
  readonly line: number | undefined;
  /** The file name as given to parseConfig. */
  readonly file: string;
  /** What is wrong, without the location prefix. */
  readonly reason: string;

  constructor(opts: { file: string; line?: number; key?: string; reason: string }) {
    const where = opts.line === undefined ? opts.file : `${opts.file}:${opts.line}`;
    const key = opts.key === undefined ? "" : ` ${opts.key}:`;
    super(`${where}:${key} ${opts.reason}`);
    this.name = "ConfigError";
    this.file = opts.file;
    this.line = opts.line;
    this.key = opts.key;
    this.reason = opts.reason;
  }
}
