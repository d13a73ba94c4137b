/**
 * The single Bun binary for tests: find a bun executable, build the binary as
 * `make compile-bun` does, start it with a config and learn its port.
 */
import { type ChildProcess, spawn } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";
import assert from "node:assert/strict";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));

/** The bun running the tests, or one on PATH / in node_modules/.bin under Deno. */
export function findBun(): string | undefined {
  if (!("Deno" in globalThis)) return process.execPath;
  const dirs = (process.env.PATH ?? "").split(path.delimiter);
  dirs.push(path.join(ROOT, "node_modules", ".bin"));
  for (const d of dirs) {
    const p = path.join(d, "bun");
    if (d && fs.existsSync(p)) return p;
  }
  return undefined;
}

export function exited(child: ChildProcess): Promise<number | null> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve(child.exitCode);
    else child.on("close", (code) => resolve(code));
  });
}

/** `bun build --compile --bytecode --format=esm src/main_bun.ts` into `binary`. */
export async function buildBinary(bun: string, binary: string): Promise<void> {
  const build = spawn(bun, [
    "build",
    "--compile",
    // As `make compile-bun` builds it: the binary we ship is the one tested.
    "--bytecode",
    "--format=esm",
    path.join(ROOT, "src/main_bun.ts"),
    "--outfile",
    binary,
  ], { cwd: ROOT, stdio: ["ignore", "ignore", "pipe"] });
  let buildErr = "";
  build.stderr!.on("data", (d) => buildErr += d);
  assert.equal(await exited(build), 0, `bun build failed: ${buildErr}`);
}

export interface RunningBinary {
  proc: ChildProcess;
  port: number;
  exit: Promise<number | null>;
  /** Everything it printed so far. */
  output(): string;
}

/** Start `binary --config config` and wait for its "listening on mqtt://127.0.0.1:PORT" line. */
export async function startBinary(binary: string, config: string): Promise<RunningBinary> {
  const proc = spawn(binary, ["--config", config], {
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, NO_COLOR: "1" },
  });
  let out = "";
  proc.stderr!.on("data", (d) => out += d);
  const exit = exited(proc);
  const port = await new Promise<number>((resolve, reject) => {
    proc.stdout!.on("data", (d) => {
      out += d;
      const m = out.match(/listening on mqtt:\/\/127\.0\.0\.1:(\d+)/);
      if (m) resolve(Number(m[1]));
    });
    exit.then(() => reject(new Error(`binary exited early: ${out}`)));
  });
  return { proc, port, exit, output: () => out };
}

/** SIGTERM, then the exit code, or a message if it is still running after `ms`. */
export async function terminate(b: RunningBinary, ms: number): Promise<number | null | string> {
  // Not proc.kill(): Deno's node:child_process then reports the signal, not the exit code.
  process.kill(b.proc.pid!, "SIGTERM");
  let timer: ReturnType<typeof setTimeout> | undefined;
  const code = await Promise.race([
    b.exit,
    new Promise<string>((r) => timer = setTimeout(() => r(`still running after ${ms} ms`), ms)),
  ]);
  clearTimeout(timer);
  return code;
}
