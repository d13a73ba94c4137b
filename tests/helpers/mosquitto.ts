/**
 * Helpers for interop tests with the mosquitto command-line clients
 * (`mosquitto_sub`, `mosquitto_pub`): tracked child processes (killed by
 * `killAll()`), bounded waits, and parsing of `mosquitto_sub -F` output.
 *
 * mosquitto_sub fully buffers stdout on a pipe, so a test cannot see when it
 * has subscribed; live-delivery tests therefore publish repeatedly until the
 * subscriber has what it waits for (`-C n`) and exits.
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { WAIT_MS, withTimeout } from "./mqttjs.ts";

/** `mosquitto_sub` output format: topic|qos|retain|payload, one line per message. */
export const FORMAT = "%t|%q|%r|%p";

export interface SubLine {
  topic: string;
  qos: number;
  retain: boolean;
  payload: string;
}

let available: boolean | undefined;

/** True when both mosquitto_sub and mosquitto_pub can be started. */
export function mosquittoClientsAvailable(): boolean {
  if (available === undefined) {
    available = ["mosquitto_sub", "mosquitto_pub"].every((cmd) => {
      const r = spawnSync(cmd, ["--help"], { stdio: "ignore" });
      return r.error === undefined;
    });
  }
  return available;
}

export interface Finished {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** A running child process. */
export interface Proc {
  child: ChildProcess;
  /** Resolves when the process exits. */
  done: Promise<Finished>;
  exited: boolean;
}

/** Starts child processes and kills every one still running in `killAll()`. */
export class Procs {
  private readonly running = new Set<Proc>();

  start(cmd: string, args: string[]): Proc {
    const child = spawn(cmd, args, { stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout!.on("data", (d: Uint8Array) => (stdout += new TextDecoder().decode(d)));
    child.stderr!.on("data", (d: Uint8Array) => (stderr += new TextDecoder().decode(d)));
    const proc: Proc = {
      child,
      exited: false,
      done: new Promise<Finished>((resolve) => {
        const finish = (code: number | null) => {
          proc.exited = true;
          this.running.delete(proc);
          resolve({ code, stdout, stderr });
        };
        child.once("error", (e) => {
          stderr += String(e);
          finish(null);
        });
        child.once("close", (code) => finish(code));
      }),
    };
    this.running.add(proc);
    return proc;
  }

  /** Runs a command to completion; fails on a non-zero exit or after `ms`. */
  async run(cmd: string, args: string[], ms = WAIT_MS): Promise<Finished> {
    const p = this.start(cmd, args);
    const r = await this.wait(p, `${cmd} ${args.join(" ")}`, ms);
    if (r.code !== 0) {
      throw new Error(`${cmd} ${args.join(" ")} exited with ${r.code}: ${r.stderr.trim()}`);
    }
    return r;
  }

  /** Waits for `p` to exit; after `ms` kills it and fails, showing what it printed. */
  async wait(p: Proc, what: string, ms = WAIT_MS): Promise<Finished> {
    try {
      return await withTimeout(p.done, what, ms);
    } catch (e) {
      p.child.kill("SIGKILL");
      const r = await withTimeout(p.done, `${what} to die`, 2000).catch(() => undefined);
      throw new Error(
        `${(e as Error).message}; stdout: ${JSON.stringify(r?.stdout ?? "")}, ` +
          `stderr: ${JSON.stringify(r?.stderr ?? "")}`,
      );
    }
  }

  async killAll(): Promise<void> {
    const all = [...this.running];
    for (const p of all) p.child.kill("SIGKILL");
    await Promise.all(all.map((p) => withTimeout(p.done, "child exit", 2000).catch(() => {})));
  }
}

/** Parses `mosquitto_sub -F FORMAT` output. */
export function parseSub(stdout: string): SubLine[] {
  return stdout.split("\n").filter((l) => l.length > 0).map((line) => {
    const [topic, qos, retain, ...rest] = line.split("|");
    return { topic, qos: Number(qos), retain: retain === "1", payload: rest.join("|") };
  });
}

/** `-h host -p port` */
export function hostArgs(b: { host: string; port: number }): string[] {
  return ["-h", b.host, "-p", String(b.port)];
}

/**
 * Runs `mosquitto_pub pubArgs` every `everyMs` until `sub` exits (it was started
 * with `-C n`), then returns what the subscriber printed. Bounded by `ms`.
 */
export async function publishUntilReceived(
  procs: Procs,
  sub: Proc,
  pubArgs: string[],
  ms = WAIT_MS,
  everyMs = 200,
): Promise<SubLine[]> {
  const deadline = Date.now() + ms;
  while (!sub.exited && Date.now() < deadline) {
    await procs.run("mosquitto_pub", pubArgs);
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([sub.done, new Promise((r) => (timer = setTimeout(r, everyMs)))]);
    clearTimeout(timer);
  }
  const r = await procs.wait(sub, "mosquitto_sub to receive its messages", 500);
  if (r.code !== 0) throw new Error(`mosquitto_sub exited with ${r.code}: ${r.stderr.trim()}`);
  return parseSub(r.stdout);
}
