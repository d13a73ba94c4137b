/**
 * A real `redis-server` for tests: its own temp dir, a free loopback port,
 * no snapshots and no AOF unless asked. Missing redis-server: tests skip,
 * unless MQTTX_REQUIRE_INTEGRATION=1 (then they fail).
 */
import process from "node:process";
import { after, before } from "node:test";
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { mustRun } from "./harness.ts";
import { freePort } from "./free_port.ts"; // `redis-server --port 0` would disable TCP
import { defaultConfig } from "../../src/config/schema.ts";
import { RedisStore, type RedisStoreOptions } from "../../src/store/redis.ts";

let available: boolean | undefined;

export function redisServerAvailable(): boolean {
  if (available === undefined) {
    const r = spawnSync("redis-server", ["--version"], { stdio: "ignore" });
    available = r.error === undefined && r.status === 0;
  }
  return available;
}

/** `skip` option for node:test: a reason when redis-server is missing and not required. */
export function skipWithoutRedis(): string | false {
  return !redisServerAvailable() && !mustRun() ? "redis-server not on PATH" : false;
}

export interface RedisServerOptions {
  /** Turn on the append-only file (appendfsync always), for crash tests. */
  appendonly?: boolean;
  /** requirepass */
  password?: string;
}

export class RedisServer {
  private proc: ChildProcess | undefined;
  private exited: Promise<void> = Promise.resolve();

  private constructor(
    readonly port: number,
    readonly dir: string,
    private readonly options: RedisServerOptions,
  ) {}

  /** With the password when the server requires one. */
  get url(): string {
    const pw = this.options.password;
    return `redis://${pw ? `:${encodeURIComponent(pw)}@` : ""}127.0.0.1:${this.port}`;
  }

  static async start(options: RedisServerOptions = {}): Promise<RedisServer> {
    const dir = mkdtempSync(join(tmpdir(), "mqttx-redis-"));
    const server = new RedisServer(await freePort(), dir, options);
    await server.restart();
    return server;
  }

  /** (Re)start on the same port and directory (data survives only with appendonly). */
  async restart(): Promise<void> {
    const args = [
      "--port",
      String(this.port),
      "--bind",
      "127.0.0.1",
      "--dir",
      this.dir,
      "--save",
      "",
      "--appendonly",
      this.options.appendonly ? "yes" : "no",
      "--appendfsync",
      "always",
      ...(this.options.password ? ["--requirepass", this.options.password] : []),
    ];
    const proc = spawn("redis-server", args, { stdio: "ignore" });
    this.proc = proc;
    this.exited = new Promise((resolve) => proc.once("exit", () => resolve()));
    const spawnError = new Promise<never>((_, reject) => proc.once("error", reject));
    await Promise.race([this.waitReady(), spawnError]);
  }

  /** Stop (SIGTERM, or SIGKILL to simulate a crash) and wait for the exit. */
  async stop(signal: "SIGTERM" | "SIGKILL" = "SIGTERM"): Promise<void> {
    const proc = this.proc;
    this.proc = undefined;
    if (proc && proc.exitCode === null && proc.signalCode === null) {
      proc.kill(signal);
      await this.exited;
    }
  }

  /** Freeze (SIGSTOP) or thaw (SIGCONT) the server: a hung Redis, its connections still open. */
  freeze(frozen: boolean): void {
    // process.kill: Deno's ChildProcess.kill sends no signal after a first one.
    if (this.proc?.pid) process.kill(this.proc.pid, frozen ? "SIGSTOP" : "SIGCONT");
  }

  async dispose(): Promise<void> {
    await this.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }

  private async waitReady(): Promise<void> {
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline) {
      if (await this.ping()) return;
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error(`redis-server did not start on port ${this.port}`);
  }

  private ping(): Promise<boolean> {
    return new Promise((resolve) => {
      const s = new Socket();
      let got = "";
      const done = (ok: boolean) => {
        s.destroy();
        resolve(ok);
      };
      s.setTimeout(1000, () => done(false));
      s.once("error", () => done(false));
      s.on("data", (d: Uint8Array) => {
        got += new TextDecoder().decode(d);
        // With requirepass the answer is -NOAUTH: the server is up all the same.
        if (got.includes("\r\n")) done(got.startsWith("+PONG") || got.startsWith("-NOAUTH"));
      });
      s.connect(this.port, "127.0.0.1", () => s.write("PING\r\n"));
    });
  }
}

/**
 * The redis-server of one test file: started before its tests, disposed after
 * them, not at all when `skip` (pass it to the tests). Call at the top level.
 */
export function redisServerForFile(): { skip: string | false; server(): RedisServer } {
  const skip = skipWithoutRedis();
  let server: RedisServer | undefined;
  before(async () => {
    if (!skip) server = await RedisServer.start();
  });
  after(async () => {
    await server?.dispose();
  });
  return { skip, server: () => server! };
}

/**
 * As redisServerForFile, with a Redis store open on that server for the file's tests to read
 * and flush (`admin()`), closed after them.
 */
export function redisWithAdminForFile() {
  const redis = redisServerForFile();
  let admin: RedisStore | undefined;
  before(async () => {
    if (!redis.skip) admin = await openRedisStore(redis.server().url);
  });
  after(async () => {
    await admin?.close();
  });
  return { ...redis, admin: () => admin! };
}

/** A Redis store on `url` with the default key prefixes. */
export function openRedisStore(
  url: string,
  extra: Partial<RedisStoreOptions> = {},
): Promise<RedisStore> {
  const { url: _default, ...prefixes } = defaultConfig().redis;
  return RedisStore.open({ url, ...prefixes, ...extra });
}

/**
 * The store contract's backend (src/store/contract.ts) on the Redis at `url`:
 * the database emptied first, each store opened by `open`.
 */
export async function redisContractBackend(
  url: string,
  open: (url: string) => Promise<RedisStore> = openRedisStore,
) {
  const admin = await openRedisStore(url);
  await admin.client.sendCommand(["FLUSHDB"]);
  return {
    open: async () => {
      const s = await open(url);
      return { sessions: s.sessions, retained: s };
    },
    storedMessageCount: async () => (await admin.scan(admin.keys.messagePattern())).length,
    durableRetained: true,
    dispose: () => admin.close(),
  };
}
