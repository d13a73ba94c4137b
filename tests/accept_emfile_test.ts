/**
 * Running out of file descriptors (EMFILE on accept) must not stop a listener: once
 * connections close, new ones are accepted again. The listener runs in a child process
 * (tests/fixtures/echo_listener.ts) with a low descriptor limit (`ulimit -n`).
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import * as net from "node:net";
import * as path from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { sleep } from "./helpers/raw_socket.ts";

const FIXTURE = fileURLToPath(new URL("./fixtures/echo_listener.ts", import.meta.url));
const RUN = "Deno" in globalThis ? `"${process.execPath}" run -A` : `"${process.execPath}"`;
/** Descriptors for the child: the runtime's own, and a few dozen connections. */
const FD_LIMIT = 64;
/** More connections than the limit leaves room for. */
const FLOOD = 2 * FD_LIMIT;

function startListener(host: string): Promise<{ child: ChildProcess; port: number }> {
  const child = spawn("sh", [
    "-c",
    `ulimit -n ${FD_LIMIT} && DENO_NO_UPDATE_CHECK=1 exec ${RUN} "${FIXTURE}" ${host}`,
  ], {
    cwd: path.dirname(FIXTURE),
    stdio: ["ignore", "pipe", "inherit"],
  });
  return new Promise((resolve, reject) => {
    let out = "";
    child.stdout!.on("data", (d) => {
      out += d;
      const m = out.match(/PORT (\d+)/);
      if (m) resolve({ child, port: Number(m[1]) });
    });
    child.once("exit", (code) => reject(new Error(`listener exited (${code}): ${out}`)));
  });
}

/** Connects, sends `text`, resolves with what comes back first (or "" when closed first). */
function echo(port: number, text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ port, host: "127.0.0.1" }, () => s.write(text));
    s.once("data", (d) => {
      resolve(String(d));
      s.destroy();
    });
    s.once("close", () => resolve(""));
    s.once("error", reject);
  });
}

for (const host of ["127.0.0.1", "localhost"]) {
  describe(`a listener on ${host} out of file descriptors`, () => {
    test("accepts again once connections close", { timeout: 60_000 }, async () => {
      const { child, port } = await startListener(host);
      const exited = new Promise((r) => child.once("exit", r));
      try {
        assert.equal(await echo(port, "before"), "before");
        // More connections than the child has descriptors for: its accepts fail (EMFILE).
        const flood: net.Socket[] = [];
        for (let i = 0; i < FLOOD; i++) {
          const s = net.connect({ port, host: "127.0.0.1" });
          s.on("error", () => {});
          flood.push(s);
        }
        await Promise.all(flood.map((s) => new Promise((r) => s.once("connect", r))));
        await sleep(1000);
        for (const s of flood) s.destroy();
        // The child closes the ones it accepted as their ends arrive, then accepts the rest
        // and a new one; a stalled listener never answers (the test's timeout).
        let answer = "";
        for (let i = 0; i < 10 && answer !== "after"; i++) {
          answer = await Promise.race([echo(port, "after"), sleep(2000).then(() => "")]);
        }
        assert.equal(answer, "after");
        assert.equal(child.exitCode, null, "the listener process is still running");
      } finally {
        child.kill();
        await exited;
      }
    });
  });
}
