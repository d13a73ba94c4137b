// `mqttx passwd`: password-file editing, and the command through cliMain with the real runtime's
// file I/O (a temporary directory) and a fake standard input.
import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import process from "node:process";
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { cliMain } from "../src/cli_main.ts";
import { defaultConfig } from "../src/config/schema.ts";
import { createAuthPlugin, parseCredential, verifyPassword } from "../src/auth/mod.ts";
import { removePasswordLine, setPasswordLine, usernameError } from "../src/auth/passwd.ts";
import { parsePasswordFile } from "../src/auth/users.ts";
import { testRuntime } from "./helpers/harness.ts";

const TIMEOUT = { timeout: 20_000 };
const dir = fs.mkdtempSync(path.join(os.tmpdir(), "mqttx-passwd-"));
after(() => fs.rmSync(dir, { recursive: true, force: true }));

class Exit extends Error {
  constructor(readonly code: number) {
    super(`exit ${code}`);
  }
}

/** Run `mqttx <args>` in-process; stdin gives `input` (one line), or nothing. */
async function mqttx(args: string[], input?: string) {
  const rt = await testRuntime();
  const out: string[] = [];
  const err: string[] = [];
  let code = -1;
  try {
    await cliMain({
      ...rt,
      args: () => args,
      exit: (c: number): never => {
        throw new Exit(c);
      },
    }, {
      out: (l) => out.push(l),
      err: (l) => err.push(l),
      readLine: () => Promise.resolve(input),
    });
  } catch (e) {
    if (!(e instanceof Exit)) throw e;
    code = e.code;
  }
  return { code, out: out.join("\n"), err: err.join("\n") };
}

describe("password file editing", () => {
  test("set replaces in place, drops duplicates, appends new users, keeps the rest", () => {
    const text = "# mqttx users\nalice:OLD\n\nbob:B\nalice:DUP\n";
    assert.equal(setPasswordLine(text, "alice", "NEW"), "# mqttx users\nalice:NEW\n\nbob:B\n");
    assert.equal(setPasswordLine(text, "carol", "C"), text + "carol:C\n");
    assert.equal(setPasswordLine("", "a", "H"), "a:H\n");
    assert.equal(setPasswordLine("x:1", "a", "H"), "x:1\na:H\n");
  });

  test("remove reports whether the user was there", () => {
    assert.deepEqual(removePasswordLine("a:1\nb:2\n", "a"), { text: "b:2\n", found: true });
    assert.deepEqual(removePasswordLine("a:1\n", "a"), { text: "", found: true });
    assert.deepEqual(removePasswordLine("a:1\n", "c"), { text: "a:1\n", found: false });
  });

  test("usernames that cannot be stored are refused", () => {
    for (const bad of ["", "a:b", "a\nb", "#a", " a"]) assert.ok(usernameError(bad), bad);
    assert.equal(usernameError("sensor-1@site"), undefined);
  });
});

describe("mqttx passwd", () => {
  test("--hash prints a credential for auth.users (argument or stdin)", TIMEOUT, async () => {
    const r = await mqttx(["passwd", "--hash", "s3cret"]);
    assert.equal(r.code, 0);
    const cred = parseCredential(r.out);
    assert.ok(cred, r.out);
    assert.equal(await verifyPassword(cred, "s3cret"), true);
    assert.ok(!r.out.includes("s3cret"));

    const s = await mqttx(["passwd", "--hash"], "from stdin\r");
    assert.equal(s.code, 0);
    assert.equal(await verifyPassword(parseCredential(s.out)!, "from stdin"), true);

    const none = await mqttx(["passwd", "--hash"]);
    assert.equal(none.code, 2);
    assert.match(none.err, /no password given/);
  });

  test("-c creates a 0600 file; later calls add, update and delete users", TIMEOUT, async () => {
    const file = path.join(dir, "passwd");
    assert.equal((await mqttx(["passwd", "-c", file, "alice", "a1"])).code, 0);
    if (os.platform() !== "win32") assert.equal(fs.statSync(file).mode & 0o777, 0o600);
    assert.equal((await mqttx(["passwd", file, "bob"], "b1")).code, 0);
    assert.equal((await mqttx(["passwd", file, "alice", "a2"])).code, 0);
    const users = parsePasswordFile(fs.readFileSync(file, "utf8"), file);
    assert.deepEqual([...users.keys()], ["alice", "bob"]);
    assert.equal(await verifyPassword(parseCredential(users.get("alice")!)!, "a2"), true);
    assert.equal(await verifyPassword(parseCredential(users.get("bob")!)!, "b1"), true);

    // The broker loads what the command wrote.
    const rt = await testRuntime();
    const plugin = await createAuthPlugin({ ...defaultConfig().auth, passwordFile: file }, {
      log: () => {},
      readTextFile: rt.readTextFile,
    });
    assert.ok(plugin?.hooks.authenticators?.length);

    const del = await mqttx(["passwd", "-D", file, "alice"]);
    assert.equal(del.code, 0);
    assert.deepEqual([...parsePasswordFile(fs.readFileSync(file, "utf8"), file).keys()], ["bob"]);
    const again = await mqttx(["passwd", "-D", file, "alice"]);
    assert.equal(again.code, 1);
    assert.match(again.err, /user alice is not in/);
  });

  test("a missing file without -c, and a bad username, are errors", TIMEOUT, async () => {
    const missing = await mqttx(["passwd", path.join(dir, "nope"), "u", "p"]);
    assert.equal(missing.code, 1);
    assert.match(missing.err, /cannot read .*nope \(use -c to create it\)/);
    assert.ok(!fs.existsSync(path.join(dir, "nope")));
    const bad = await mqttx(["passwd", "-c", path.join(dir, "x"), "a:b", "p"]);
    assert.equal(bad.code, 2);
    assert.match(bad.err, /cannot contain ':'/);
  });
});

describe("mqttx passwd as a process", () => {
  test("reads the password from standard input and exits 0", TIMEOUT, async () => {
    const root = fileURLToPath(new URL("..", import.meta.url));
    const entry = "Deno" in globalThis
      ? ["run", "-A", path.join(root, "src/main.ts")]
      : [path.join(root, "src/main_bun.ts")];
    const child = spawn(process.execPath, [...entry, "passwd", "--hash"], {
      cwd: root,
      stdio: ["pipe", "pipe", "pipe"],
    });
    let out = "";
    child.stdout!.on("data", (d) => (out += d));
    child.stderr!.resume();
    const exit = new Promise<number | null>((resolve) => child.on("close", (c) => resolve(c)));
    child.stdin!.end("piped secret\nignored second line\n");
    const timer = setTimeout(() => child.kill(), 15_000);
    const code = await exit.finally(() => clearTimeout(timer));
    assert.equal(code, 0);
    assert.equal(await verifyPassword(parseCredential(out.trim())!, "piped secret"), true);
  });
});

describe("password file reload (SIGHUP)", () => {
  test(
    "new users are taken, removed ones refused, connected clients stay; a bad file changes nothing",
    TIMEOUT,
    async () => {
      const { startApp } = await import("../src/app.ts");
      const mqtt = (await import("mqtt")).default;
      const file = path.join(dir, "reload-passwd");
      assert.equal((await mqttx(["passwd", "-c", file, "alice", "a1"])).code, 0);
      const config = defaultConfig();
      config.host = "127.0.0.1";
      config.socket.port = 0;
      config.auth.allowAnonymous = false;
      config.auth.passwordFile = file;
      const logs: string[] = [];
      const app = await startApp(await testRuntime(), config, { log: (l) => logs.push(l) });
      const url = `mqtt://127.0.0.1:${app.ports.socket}`;
      const open: import("mqtt").MqttClient[] = [];
      const connects = async (username: string, password: string) => {
        try {
          const c = await mqtt.connectAsync(url, { username, password, reconnectPeriod: 0 });
          open.push(c);
          return true;
        } catch {
          return false;
        }
      };
      try {
        assert.equal(await connects("alice", "a1"), true);
        const alice = open[0];
        assert.equal(await connects("bob", "b1"), false);

        assert.equal((await mqttx(["passwd", file, "bob", "b1"])).code, 0);
        assert.equal((await mqttx(["passwd", "-D", file, "alice"])).code, 0);
        assert.equal(await connects("bob", "b1"), false, "nothing changes before the reload");
        await app.reload();
        assert.match(logs.join("\n"), /auth\.password-file reloaded \(1 users\)/);
        assert.equal(await connects("bob", "b1"), true);
        assert.equal(await connects("alice", "a1"), false);
        // alice's connection from before the reload still works
        const got = new Promise<string>((r) => alice.on("message", (_t, p) => r(String(p))));
        await alice.subscribeAsync("reload/t", { qos: 1 });
        await alice.publishAsync("reload/t", "still here", { qos: 1 });
        assert.equal(await got, "still here");

        fs.writeFileSync(file, "carol:plain-text-password\n");
        await app.reload();
        assert.match(logs.at(-1)!, /keeping the users read before/);
        assert.equal(await connects("bob", "b1"), true, "the last good file still counts");
        assert.equal(await connects("carol", "plain-text-password"), false);
      } finally {
        for (const c of open) await c.endAsync(true);
        await app.stop();
      }
    },
  );
});
