/**
 * Command-line arguments and help text. Runtime-free: the entry files pass in
 * the arguments (without the program name) and act on the result.
 */

/**
 * The version shown by `--version`. It must match package.json's "version"
 * (tests/cli_test.ts checks): a compiled binary cannot read package.json.
 */
export const VERSION = "0.1.0";

export type CliArgs =
  | { command: "run"; configPath?: string }
  | { command: "help" }
  | { command: "version" }
  | { command: "error"; message: string };

export const HELP_TEXT = `mqttx ${VERSION} - MQTT 3.1/3.1.1/5.0 broker for Deno and Bun

Usage:
  mqttx [--config <file.yml>]   start the broker (built-in defaults without --config)
  mqttx --help                  print this help
  mqttx --version               print the version

Options:
  -c, --config <file>   YAML configuration file; items under a top-level "mqttx:" key,
                        kebab-case or camelCase, as in the Java mqttx application.yml
  -h, --help            print this help and exit
  -V, --version         print the version and exit

Every configuration item is described in config.example.yml; see README.md for
the quick start and docs/architecture.md for the design.`;

/** Reads `argv` left to right; the first help, version or error decides. */
export function parseArgs(argv: string[]): CliArgs {
  let configPath: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === "-h" || arg === "--help") return { command: "help" };
    if (arg === "-V" || arg === "--version") return { command: "version" };

    let value: string | undefined;
    if (arg === "-c" || arg === "--config") {
      value = argv[++i];
      if (value === undefined) return error(`option ${arg} needs a file path`);
    } else if (arg.startsWith("--config=")) {
      value = arg.slice("--config=".length);
    } else if (arg.startsWith("-")) {
      return error(`unknown option ${arg}`);
    } else {
      return error(`unexpected argument ${arg}`);
    }
    if (value === "") return error(`option ${arg.split("=")[0]} needs a file path`);
    if (configPath !== undefined) return error("option --config given more than once");
    configPath = value;
  }
  return configPath === undefined ? { command: "run" } : { command: "run", configPath };
}

function error(message: string): CliArgs {
  return { command: "error", message };
}
