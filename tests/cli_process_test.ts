/**
 * The `mqttx` command as a user meets it: the entry of the runtime running this
 * file (deno run src/main.ts, or bun src/main_bun.ts) in a child process.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import * as net from "node:net";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { HELP_TEXT, VERSION } from "../src/cli.ts";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const IS_DENO = "Deno" in globalThis;
/** process.execPath is the deno or bun executable running this test. */
const ENTRY = IS_DENO
  ? [process.execPath, "run", "-A", path.join(ROOT, "src/main.ts")]
  : [process.execPath, path.join(ROOT, "src/main_bun.ts")];

interface Run {
  child: ChildProcess;
  stdout: () => string;
  stderr: () => string;
  exit: Promise<{ code: number | null; signal: string | null }>;
}

function start(args: string[]): Run {
  const child = spawn(ENTRY[0], [...ENTRY.slice(1), ...args], {
    cwd: ROOT,
    env: { ...process.env, NO_COLOR: "1" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  let err = "";
  child.stdout!.on("data", (d) => out += d);
  child.stderr!.on("data", (d) => err += d);
  const exit = new Promise<{ code: number | null; signal: string | null }>((resolve) =>
    child.on("close", (code, signal) => resolve({ code, signal }))
  );
  return { child, stdout: () => out, stderr: () => err, exit };
}

async function run(args: string[]) {
  const r = start(args);
  const { code } = await r.exit;
  return { code, stdout: r.stdout(), stderr: r.stderr() };
}

function tempFile(name: string, text: string): { file: string; cleanup(): void } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "mqttx-cli-"));
  const file = path.join(dir, name);
  fs.writeFileSync(file, text);
  return { file, cleanup: () => fs.rmSync(dir, { recursive: true, force: true }) };
}

/** Resolves with the first match of `re` in the child's stdout. */
function waitFor(r: Run, re: RegExp): Promise<RegExpMatchArray> {
  return new Promise((resolve, reject) => {
    const check = () => {
      const m = r.stdout().match(re);
      if (m) {
        r.child.stdout!.off("data", check);
        resolve(m);
      }
    };
    r.child.stdout!.on("data", check);
    r.exit.then(() => reject(new Error(`exited before ${re}: ${r.stdout()}${r.stderr()}`)));
    check();
  });
}

/** SIGTERM, then exit code 0. (Not child.kill(): Deno's node:child_process then reports the signal.) */
async function stopsCleanly(r: Run): Promise<void> {
  process.kill(r.child.pid!, "SIGTERM");
  assert.equal((await r.exit).code, 0, r.stderr());
}

/** The child is gone (SIGKILL if it still runs). */
async function killed(r: Run): Promise<void> {
  if (r.child.exitCode === null && r.child.signalCode === null) r.child.kill("SIGKILL");
  await r.exit;
}

describe("mqttx command line", () => {
  test("--help prints the help text and exits 0", async () => {
    const r = await run(["--help"]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.trim(), HELP_TEXT.trim());
  });

  test("--version prints the version and exits 0", async () => {
    const r = await run(["--version"]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.trim(), `mqttx ${VERSION}`);
  });

  test("an unknown option exits 2 with usage on stderr", async () => {
    const r = await run(["--no-such-option"]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /no-such-option/);
    assert.equal(r.stdout, "");
  });

  test("a bad config value exits 2 naming the key and line", async () => {
    const t = tempFile(
      "bad.yml",
      "# a config with one bad value\nenable-test-mode: true\nsocket:\n  port: not-a-port\n",
    );
    try {
      const r = await run(["--config", t.file]);
      assert.equal(r.code, 2, r.stdout + r.stderr);
      assert.match(r.stderr, /port/);
      assert.match(r.stderr, /\b4\b/, `line 4 not named in: ${r.stderr}`);
    } finally {
      t.cleanup();
    }
  });

  test("a port in use exits non-zero naming the listener, host and port", async () => {
    const blocker = net.createServer();
    await new Promise<void>((r) => blocker.listen(0, "127.0.0.1", () => r()));
    const port = (blocker.address() as net.AddressInfo).port;
    const t = tempFile("busy.yml", `mqttx:\n  host: 127.0.0.1\n  socket:\n    port: ${port}\n`);
    try {
      const r = await run(["--config", t.file]);
      assert.notEqual(r.code, 0, r.stdout + r.stderr);
      assert.match(r.stderr, new RegExp(`tcp listener .*127\\.0\\.0\\.1:${port}.*port in use`));
    } finally {
      t.cleanup();
      blocker.close();
    }
  });

  test("an original mqttx 1.2.3 config starts and names its ignored keys once", async () => {
    const t = tempFile(
      "application.yml",
      'spring:\n  redis:\n    host: localhost\nmqttx:\n  broker-id: "001"\n' +
        "  host: 127.0.0.1\n  http-client-connect-timeout: 10s\n  socket:\n    port: 0\n" +
        "  sharable-payload:\n    threshold-in-message: 128\n  auth:\n    timeout: 3s\n",
    );
    const r = start(["--config", t.file]);
    try {
      await waitFor(r, /listening on mqtt:\/\/127\.0\.0\.1:\d+/);
      const ignored = r.stdout().split("\n").filter((l) => l.includes("ignoring keys"));
      assert.equal(ignored.length, 1, r.stdout());
      assert.match(ignored[0], /http-client-connect-timeout.*sharable-payload/);
      await stopsCleanly(r);
    } finally {
      await killed(r);
      t.cleanup();
    }
  });

  test("a missing config file exits 2 naming the file", async () => {
    const missing = path.join(os.tmpdir(), "mqttx-no-such-dir", "nope.yml");
    const r = await run(["--config", missing]);
    assert.equal(r.code, 2);
    assert.ok(r.stderr.includes(missing), r.stderr);
  });

  test("SIGHUP re-reads the password file", async () => {
    // An empty password file is valid: no users yet.
    const pw = tempFile("passwd", "");
    const t = tempFile(
      "pw.yml",
      "enable-test-mode: true\nhost: 127.0.0.1\nsocket:\n  enable: true\n  port: 0\n" +
        `auth:\n  password-file: ${JSON.stringify(pw.file)}\n`,
    );
    const r = start(["--config", t.file]);
    try {
      await waitFor(r, /listening on mqtt:/);
      process.kill(r.child.pid!, "SIGHUP");
      await waitFor(r, /auth\.password-file reloaded \(0 users\)/);
      await stopsCleanly(r);
    } finally {
      await killed(r);
      t.cleanup();
      pw.cleanup();
    }
  });

  test("serves on the logged port, survives SIGHUP, exits 0 on SIGTERM", async () => {
    const t = tempFile(
      "ok.yml",
      "enable-test-mode: true\nhost: 127.0.0.1\nsocket:\n  enable: true\n  port: 0\n",
    );
    const r = start(["--config", t.file]);
    try {
      const m = await waitFor(r, /listening on mqtt:\/\/127\.0\.0\.1:(\d+)/);
      const port = Number(m[1]);
      assert.ok(port > 0);
      const sock = await new Promise<net.Socket>((resolve, reject) => {
        const s = net.connect({ port, host: "127.0.0.1" }, () => resolve(s));
        s.once("error", reject);
      });
      const closed = new Promise((resolve) => sock.on("close", resolve));
      sock.on("error", () => {});
      // SIGHUP with no TLS listener is answered, not fatal (its default action ends a process).
      process.kill(r.child.pid!, "SIGHUP");
      await waitFor(r, /SIGHUP: nothing to reload/);
      // Not child.kill(): Deno's node:child_process then reports the signal, not the exit code.
      process.kill(r.child.pid!, "SIGTERM");
      const { code } = await r.exit;
      await closed; // shutdown closed our connection
      assert.equal(code, 0, r.stderr());
    } finally {
      if (r.child.exitCode === null && r.child.signalCode === null) r.child.kill("SIGKILL");
      await r.exit;
      t.cleanup();
    }
  });
});
