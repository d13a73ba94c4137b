/**
 * What `mqttx` does once an entry file has picked its runtime: parse args,
 * load the config, start the app, and shut down cleanly on SIGINT/SIGTERM.
 * Runtime-free, so both entries (main.ts, main_bun.ts) share it.
 */
import { type RunningApp, startApp } from "./app.ts";
import { HELP_TEXT, parseArgs, VERSION } from "./cli.ts";
import { ConfigError, ignoredKeysLine, parseConfigReport } from "./config/load.ts";
import { defaultConfig } from "./config/schema.ts";
import type { MqttxConfig } from "./config/types.ts";
import type { Runtime } from "./runtime/types.ts";
import { passwdCommand } from "./auth/passwd.ts";
import { linuxThreadTable, lowerHelperThreads } from "./runtime/helper_threads.ts";
import process from "node:process";

export interface CliIo {
  out(line: string): void;
  err(line: string): void;
  /** First line of standard input (`mqttx passwd` without a password argument). */
  readLine?(): Promise<string | undefined>;
}

const consoleIo: CliIo = {
  out: (line) => console.log(line),
  err: (line) => console.error(line),
  readLine: readStdinLine,
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
    case "passwd": {
      const code = await passwdCommand(args, {
        readTextFile: (path) => runtime.readTextFile(path),
        writeTextFile: (path, data, opts) => runtime.writeTextFile(path, data, opts),
        readLine: io.readLine ?? (() => Promise.resolve(undefined)),
        out: io.out,
        err: io.err,
      });
      return runtime.exit(code);
    }
  }

  const config = await loadConfig(runtime, args.configPath, io);

  // Handlers go in before the start line is logged, so a signal sent as soon
  // as the port is known is never missed.
  let app: RunningApp | undefined;
  let stopping = false;
  const shutdown = (signal: string) => {
    if (stopping) return runtime.exit(1); // a second signal: the user is impatient
    stopping = true;
    const line = `mqttx: ${signal} received, shutting down`;
    if (app) app.logger.info("shutdown", { msg: line, signal });
    else io.out(line);
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
    return;
  }
  // After start-up, so the threads JIT compilation of start-up made are found at once.
  lowerHelperThreads(
    runtime.helperThreads,
    process.platform,
    linuxThreadTable(runtime.threadBatch?.(), runtime.threadIdle?.()),
  );
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
    const { config, ignored } = parseConfigReport(text, path);
    const line = ignoredKeysLine(ignored);
    if (line) io.out(line);
    return config;
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    io.err(`mqttx: ${e.message}`);
    return runtime.exit(2);
  }
}

function message(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** The first line of standard input (node:process works on Deno and Bun). */
function readStdinLine(): Promise<string | undefined> {
  const stdin = process.stdin;
  return new Promise((resolve, reject) => {
    let buf = "";
    const done = (line: string | undefined) => {
      stdin.off("data", onData).off("end", onEnd).off("error", reject);
      stdin.pause();
      resolve(line);
    };
    const onData = (d: Uint8Array | string) => {
      buf += typeof d === "string" ? d : new TextDecoder().decode(d);
      const nl = buf.indexOf("\n");
      if (nl >= 0) done(buf.slice(0, nl));
    };
    const onEnd = () => done(buf === "" ? undefined : buf);
    stdin.on("data", onData).on("end", onEnd).on("error", reject);
  });
}
