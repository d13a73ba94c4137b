/**
 * What `mqttx` does once an entry file has picked its runtime: parse args,
 * load the config, start the app, and shut down cleanly on SIGINT/SIGTERM.
 * Runtime-free, so both entries (main.ts, main_bun.ts) share it.
 */
import { type RunningApp, startApp } from "./app.ts";
import { HELP_TEXT, parseArgs, VERSION } from "./cli.ts";
import { ConfigError, parseConfig } from "./config/load.ts";
import { defaultConfig } from "./config/schema.ts";
import type { MqttxConfig } from "./config/types.ts";
import type { Runtime } from "./runtime/types.ts";

export interface CliIo {
  out(line: string): void;
  err(line: string): void;
}

const consoleIo: CliIo = {
  out: (line) => console.log(line),
  err: (line) => console.error(line),
};

/** How long a clean shutdown may take before we exit anyway. */
const SHUTDOWN_GRACE_MS = 900;

export async function cliMain(runtime: Runtime, io: CliIo = consoleIo): Promise<void> {
  const args = parseArgs(runtime.args());
  switch (args.command) {
    case "help":
      io.out(HELP_TEXT);
      return runtime.exit(0);
    case "version":
      io.out(`mqttx ${VERSION}`);
      return runtime.exit(0);
    case "error":
      io.err(`mqttx: ${args.message}`);
      io.err(HELP_TEXT);
      return runtime.exit(2);
  }

  const config = await loadConfig(runtime, args.configPath, io);

  // Handlers go in before the start line is logged, so a signal sent as soon
  // as the port is known is never missed.
  let app: RunningApp | undefined;
  let stopping = false;
  const shutdown = (signal: string) => {
    if (stopping) return runtime.exit(1); // a second signal: the user is impatient
    stopping = true;
    io.out(`mqttx: ${signal} received, shutting down`);
    if (!app) return; // still starting: finished below
    // Exit even if a client holds things up: shutdown must not hang.
    const timer = setTimeout(() => runtime.exit(0), SHUTDOWN_GRACE_MS);
    app.stop().then(
      () => {
        clearTimeout(timer);
        runtime.exit(0);
      },
      (e) => {
        io.err(`mqttx: error while stopping: ${message(e)}`);
        runtime.exit(1);
      },
    );
  };
  runtime.onSignal("SIGINT", () => shutdown("SIGINT"));
  runtime.onSignal("SIGTERM", () => shutdown("SIGTERM"));

  try {
    app = await startApp(runtime, config, { version: VERSION, log: io.out });
  } catch (e) {
    io.err(`mqttx: cannot start: ${message(e)}`);
    return runtime.exit(1);
  }
  if (stopping) {
    stopping = false;
    shutdown("earlier signal");
  }
}

async function loadConfig(
  runtime: Runtime,
  path: string | undefined,
  io: CliIo,
): Promise<MqttxConfig> {
  if (path === undefined) return defaultConfig();
  let text: string;
  try {
    text = await runtime.readTextFile(path);
  } catch (e) {
    io.err(`mqttx: cannot read config file ${path}: ${message(e)}`);
    return runtime.exit(2);
  }
  try {
    return parseConfig(text, path);
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    io.err(`mqttx: ${e.message}`);
    return runtime.exit(2);
  }
}

function message(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
