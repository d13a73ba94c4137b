/**
 * A real Mosquitto broker as the upstream of a bridge: started on a free
 * loopback port with a temp config file, stoppable and restartable on the same
 * port (with `persistence true`, so its subscribers' sessions survive a
 * restart, as a cloud broker's would). `remove()` kills it and deletes its dir.
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import * as net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { sleep } from "./mqttjs.ts";
import { freePort } from "./free_port.ts";

let available: boolean | undefined;

export function mosquittoAvailable(): boolean {
  available ??= spawnSync("mosquitto", ["-h"], { stdio: "ignore" }).error === undefined;
  return available;
}

export interface UpstreamOptions {
  /** A TLS listener with these PEM files instead of plain TCP. */
  tls?: { cert: string; key: string; ca: string };
  /** An ACL file's text (Mosquitto `acl_file`): lines before any `user` apply to anonymous clients. */
  acl?: string;
  /**
   * Mosquitto's `max_queued_messages` (default here 0: no bound). Mosquitto 2.0.11 drops the
   * connection right after refusing a QoS 2 PUBLISH (PUBREC 0x87) when it is 0.
   */
  maxQueuedMessages?: number;
}

export interface Upstream {
  port: number;
  /** mqtt://127.0.0.1:port (or mqtts://localhost:port with TLS). */
  url: string;
  running: boolean;
  /** SIGTERM (Mosquitto saves its sessions), then wait for the exit. */
  stop(): Promise<void>;
  /** Start again on the same port. */
  start(): Promise<void>;
  remove(): Promise<void>;
  /** What Mosquitto wrote to stderr so far (for failure messages). */
  log(): string;
}

function accepting(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = net.connect(port, "127.0.0.1");
    sock.once("connect", () => {
      sock.destroy();
      resolve(true);
    });
    sock.once("error", () => resolve(false));
  });
}

export async function startUpstream(opts: UpstreamOptions = {}): Promise<Upstream> {
  const dir = mkdtempSync(join(tmpdir(), "mqttx-upstream-"));
  const port = await freePort();
  const conf = join(dir, "mosquitto.conf");
  const lines = [
    `listener ${port} 127.0.0.1`,
    "allow_anonymous true",
    // Run as root (CI), Mosquitto would switch to its own user, which cannot read our temp files.
    "user root",
    "persistence true",
    `persistence_location ${dir}/`,
    `max_queued_messages ${opts.maxQueuedMessages ?? 0}`,
    "log_dest stderr",
  ];
  if (opts.tls) {
    lines.push(`cafile ${opts.tls.ca}`, `certfile ${opts.tls.cert}`, `keyfile ${opts.tls.key}`);
  }
  if (opts.acl !== undefined) {
    writeFileSync(join(dir, "acl"), opts.acl);
    lines.push(`acl_file ${join(dir, "acl")}`);
  }
  writeFileSync(conf, lines.join("\n") + "\n");
  let child: ChildProcess | undefined;
  let exited: Promise<void> = Promise.resolve();
  let log = "";

  const up: Upstream = {
    port,
    url: opts.tls ? `mqtts://localhost:${port}` : `mqtt://127.0.0.1:${port}`,
    running: false,
    async start() {
      const c = spawn("mosquitto", ["-c", conf], { stdio: ["ignore", "ignore", "pipe"] });
      child = c;
      c.stderr!.on("data", (d) => (log += d));
      exited = new Promise((resolve) => c.once("close", () => resolve()));
      const deadline = Date.now() + 10_000;
      while (!(await accepting(port))) {
        if (c.exitCode !== null || Date.now() > deadline) {
          throw new Error(`mosquitto did not start on port ${port}: ${log}`);
        }
        await sleep(50);
      }
      up.running = true;
    },
    async stop() {
      if (!child || !up.running) return;
      up.running = false;
      child.kill("SIGTERM");
      await exited;
    },
    log: () => log,
    async remove() {
      if (child && up.running) {
        up.running = false;
        child.kill("SIGKILL");
        await exited;
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
  await up.start();
  return up;
}
