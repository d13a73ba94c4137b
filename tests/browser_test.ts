/**
 * A real browser: headless Chromium loads a page served by this test; the page
 * connects with MQTT.js's browser build over WebSocket (ws://, the runtime's
 * own WebSocket server), subscribes, and receives a message published by a
 * TCP client. The page reports each step back over HTTP (GET /report), so the
 * test needs no DevTools protocol. Skips without `chromium` unless
 * MQTTX_REQUIRE_INTEGRATION=1.
 */
import { afterEach, describe, test } from "node:test";
import assert from "node:assert/strict";
import * as http from "node:http";
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { mustRun } from "./helpers/harness.ts";
import { CHROMIUM, chromiumFlags } from "./helpers/chromium.ts";
import { startTestApp, type TestApp } from "./helpers/certs.ts";
import { Clients, publish, uid, withTimeout } from "./helpers/mqttjs.ts";

const skip = !CHROMIUM && !mustRun() ? "chromium not on PATH" : false;

const root = new URL("..", import.meta.url).pathname;
const cleanups: (() => void | Promise<void>)[] = [];
const clients = new Clients(() => "unused");

afterEach(async () => {
  await clients.closeAll();
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** Steps the page reported, with a waiter. */
class Reports {
  readonly steps: { step: string; value: string }[] = [];
  private waiters = new Set<() => void>();
  add(step: string, value: string) {
    this.steps.push({ step, value });
    for (const w of [...this.waiters]) w();
  }
  async until(step: string, what: string, ms = 20_000): Promise<string> {
    const find = () => this.steps.find((s) => s.step === step || s.step === "error");
    let done!: () => void;
    const ready = new Promise<void>((r) => (done = r));
    const check = () => find() && done();
    this.waiters.add(check);
    check();
    try {
      await withTimeout(ready, `${what} (page reported ${JSON.stringify(this.steps)})`, ms);
    } finally {
      this.waiters.delete(check);
    }
    const s = find()!;
    assert.equal(s.step, step, `page reported an error: ${s.value}`);
    return s.value;
  }
}

async function servePage(vars: Record<string, string>, reports: Reports): Promise<number> {
  let page = readFileSync(join(root, "tests/fixtures/browser_page.html"), "utf8");
  for (const [k, v] of Object.entries(vars)) page = page.replaceAll(`__${k}__`, v);
  const bundle = readFileSync(join(root, "node_modules/mqtt/dist/mqtt.min.js"));
  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? "/", "http://x");
    if (url.pathname === "/") {
      res.writeHead(200, { "content-type": "text/html; charset=utf-8" }).end(page);
    } else if (url.pathname === "/mqtt.min.js") {
      res.writeHead(200, { "content-type": "text/javascript" }).end(bundle);
    } else if (url.pathname === "/report") {
      reports.add(url.searchParams.get("step") ?? "", url.searchParams.get("value") ?? "");
      res.writeHead(204).end();
    } else res.writeHead(404).end();
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  cleanups.push(() =>
    new Promise<void>((r) => {
      server.closeAllConnections?.();
      server.close(() => r());
    })
  );
  return (server.address() as { port: number }).port;
}

function launchChromium(url: string): void {
  const profile = mkdtempSync(join(tmpdir(), "mqttx-chromium-"));
  const child = spawn(CHROMIUM!, [...chromiumFlags(profile), url], {
    stdio: ["ignore", "ignore", "pipe"],
  });
  let stderr = "";
  child.stderr!.on(
    "data",
    (d: Uint8Array) => (stderr = (stderr + new TextDecoder().decode(d)).slice(-4000)),
  );
  const exited = new Promise<void>((r) => child.once("close", () => r()));
  cleanups.push(async () => {
    child.kill("SIGKILL");
    await withTimeout(exited, "chromium to exit", 5000).catch(() => {});
    rmSync(profile, { recursive: true, force: true });
  });
  child.once("close", (code) => {
    if (code !== null && code !== 0) console.error(`chromium exited with ${code}: ${stderr}`);
  });
}

describe("browser (headless Chromium)", { skip }, () => {
  test("chromium is available (required in CI)", () => {
    assert.ok(CHROMIUM, "chromium must be on PATH");
  });

  test("MQTT.js in the browser subscribes over ws:// and receives from a TCP client", {
    timeout: 60_000,
  }, async () => {
    const app: TestApp = await startTestApp({ websocket: { enable: true, port: 0 } });
    cleanups.push(() => app.stop());
    const topic = `browser/${uid()}`;
    const clientId = `chromium-${uid()}`;
    const reports = new Reports();
    const httpPort = await servePage({
      WS_URL: `ws://127.0.0.1:${app.app.ports.websocket}/mqtt`,
      CLIENT_ID: clientId,
      TOPIC: topic,
    }, reports);
    launchChromium(`http://127.0.0.1:${httpPort}/`);
    await reports.until("connected", "the browser to connect", 40_000);
    await reports.until("subscribed", "the browser to subscribe");
    const tcp = await clients.connect({
      host: "127.0.0.1",
      port: app.app.ports.socket!,
      protocol: "mqtt",
    });
    await publish(tcp.client, topic, "hello browser", { qos: 1 });
    assert.equal(await reports.until("message", "the message in the browser"), "hello browser");
  });
});
