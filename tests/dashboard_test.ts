/**
 * The dashboard at `/` in headless Chromium: the page, with the API token in
 * its address, renders the client list from /api/v1/clients (the DOM dump
 * shows a connected test client's id) and its charts from /metrics; a
 * screenshot goes to test-output/dashboard.png (MQTTX_TEST_OUTPUT to move
 * it). Skips without chromium unless MQTTX_REQUIRE_INTEGRATION=1.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { CHROMIUM, chromiumFlags } from "./helpers/chromium.ts";
import { mkdirSync, mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { env, mustRun } from "./helpers/harness.ts";
import { uid, withTimeout } from "./helpers/mqttjs.ts";
import { TOKEN, useOpsApp } from "./helpers/ops.ts";

const skip = !CHROMIUM && !mustRun() ? "chromium not on PATH" : false;
const OUT = env("MQTTX_TEST_OUTPUT") ??
  join(new URL("..", import.meta.url).pathname, "test-output");

const { clients, start } = useOpsApp();

/** Run headless Chromium on `page` with extra flags; resolves with its stdout. */
async function chromium(page: string, flags: string[]): Promise<string> {
  const profile = mkdtempSync(join(tmpdir(), "mqttx-dash-"));
  const child = spawn(CHROMIUM!, [
    ...chromiumFlags(profile),
    // Let the page's timers and fetches run before the DOM is dumped / the shot taken.
    "--virtual-time-budget=6000",
    "--window-size=1100,700",
    ...flags,
    page,
  ], { stdio: ["ignore", "pipe", "pipe"] });
  let out = "", err = "";
  child.stdout.on("data", (d) => (out += d));
  child.stderr.on("data", (d) => (err += d));
  try {
    const code = await withTimeout(
      new Promise<number | null>((r) => child.once("exit", r)),
      "chromium to finish",
      45_000,
    );
    assert.equal(code, 0, `chromium exited with ${code}: ${err}`);
    return out;
  } finally {
    if (child.exitCode === null) child.kill("SIGKILL");
    rmSync(profile, { recursive: true, force: true });
  }
}

describe("dashboard in headless Chromium", { skip }, () => {
  test("shows the connected clients from the API and draws the charts", {
    timeout: 120_000,
  }, async () => {
    const app = await start();
    const id = `dash-${uid()}`;
    await clients.connect({ clientId: id, username: "dash-user" });
    const page = `${app.base}/#token=${TOKEN}`;

    const dom = await chromium(page, ["--dump-dom"]);
    assert.match(dom, new RegExp(`<td>${id}</td><td>dash-user</td><td>127\\.0\\.0\\.1:\\d+</td>`));
    assert.match(dom, /<span id="conn">1<\/span>/); // connected clients, from /metrics
    assert.match(dom, /class="ok">healthy</);

    mkdirSync(OUT, { recursive: true });
    const shot = join(OUT, "dashboard.png");
    rmSync(shot, { force: true });
    await chromium(page, [`--screenshot=${shot}`]);
    assert.ok(statSync(shot).size > 5000, "a screenshot with content");

    // Without the token the page says so and lists nobody.
    const locked = await chromium(app.base + "/", ["--dump-dom"]);
    assert.match(locked, /token needed/);
    assert.ok(!locked.includes(id));
  });
});
