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
  | PasswdArgs
  | { command: "error"; message: string };

/** `mqttx passwd ...`: hash a password, or add/update/delete a password-file user. */
export type PasswdArgs =
  | { command: "passwd"; action: "hash"; password?: string }
  | {
    command: "passwd";
    action: "set";
    file: string;
    username: string;
    password?: string;
    create: boolean;
  }
  | { command: "passwd"; action: "delete"; file: string; username: string };

export const HELP_TEXT = `mqttx ${VERSION} - MQTT 3.1/3.1.1/5.0 broker for Deno and Bun

Usage:
  mqttx [--config <file.yml>]   start the broker (built-in defaults without --config)
  mqttx --help                  print this help
  mqttx --version               print the version
  mqttx passwd [-c] <file> <username> [<password>]
                                add or update a user in a password file (auth.password-file);
                                -c creates (or empties) the file first
  mqttx passwd -D <file> <username>
                                delete a user from a password file
  mqttx passwd --hash [<password>]
                                print a password hash for auth.users
                                Without <password> the first line of standard input is read
                                (safer: a password on the command line shows in 'ps').

Options:
  -c, --config <file>   YAML configuration file; items under a top-level "mqttx:" key,
                        kebab-case or camelCase, as in the Java mqttx application.yml
  -h, --help            print this help and exit
  -V, --version         print the version and exit

Every configuration item is described in config.example.yml; see README.md for
the quick start and docs/architecture.md for the design.`;

/** Reads `argv` left to right; the first help, version or error decides. */
export function parseArgs(argv: string[]): CliArgs {
  if (argv[0] === "passwd") return parsePasswd(argv.slice(1));
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

/** `passwd [-c|-D] FILE USERNAME [PASSWORD]` or `passwd --hash [PASSWORD]`. */
function parsePasswd(argv: string[]): CliArgs {
  let create = false;
  let del = false;
  let hash = false;
  const rest: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === "-h" || arg === "--help") return { command: "help" };
    if (arg === "--") {
      rest.push(...argv.slice(i + 1));
      break;
    }
    if (arg === "-c" || arg === "--create") create = true;
    else if (arg === "-D" || arg === "--delete") del = true;
    else if (arg === "--hash") hash = true;
    else if (arg.startsWith("-") && arg !== "-") return error(`passwd: unknown option ${arg}`);
    else rest.push(arg);
  }
  if ([create, del, hash].filter(Boolean).length > 1) {
    return error("passwd: -c, -D and --hash cannot be combined");
  }
  if (hash) {
    if (rest.length > 1) return error("passwd --hash takes at most one argument, the password");
    return rest.length === 1
      ? { command: "passwd", action: "hash", password: rest[0] }
      : { command: "passwd", action: "hash" };
  }
  if (rest.length < 2) return error("passwd needs a password file and a username");
  const [file, username, password] = rest;
  if (file === "") return error("passwd: the password file path is empty");
  if (del) {
    if (rest.length > 2) return error("passwd -D takes a file and a username only");
    return { command: "passwd", action: "delete", file, username };
  }
  if (rest.length > 3) return error(`passwd: unexpected argument ${rest[3]}`);
  return password === undefined
    ? { command: "passwd", action: "set", file, username, create }
    : { command: "passwd", action: "set", file, username, password, create };
}

function error(message: string): CliArgs {
  return { command: "error", message };
}
