/**
 * The operations endpoint against what a QA pass found: a request without Host (HTTP/1.0
 * health checkers), a web page on this machine calling the tokenless API (another Origin, or a
 * rebound Host), a publish to $SYS or larger than max-bytes-in-message, the Bearer scheme's case,
 * a 405 without its Allow header.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import net from "node:net";
import { useOpsApp } from "./helpers/ops.ts";
import { hostPort } from "../src/runtime/address.ts";

const TIMEOUT = { timeout: 30_000 };
const { start } = useOpsApp();

/** One raw HTTP exchange; returns the status line. */
function raw(port: number, request: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, "127.0.0.1", () => s.write(request));
    let got = "";
    s.on("data", (d: Uint8Array) => (got += new TextDecoder().decode(d)));
    s.on("end", () => resolve(got.split("\r\n")[0]));
    s.on("error", reject);
  });
}

const post = (body: unknown, headers: Record<string, string> = {}) => ({
  method: "POST",
  headers: { "content-type": "application/json", ...headers },
  body: JSON.stringify(body),
});

describe("operations endpoint hardening", () => {
  test("a request without a Host header is answered", TIMEOUT, async () => {
    const a = await start();
    const status = await raw(a.app.httpPort!, "GET /health HTTP/1.0\r\n\r\n");
    assert.match(status, /^HTTP\/1\.[01] 200/);
  });

  test("the tokenless API refuses web pages: another Origin, a rebound Host", TIMEOUT, async () => {
    const a = await start({ http: { token: "" } });
    const msg = { topic: "t/x", payload: "p" };
    let r = await fetch(`${a.base}/api/v1/publish`, post(msg, { origin: "http://evil.example" }));
    assert.equal(r.status, 403);
    await r.body?.cancel();
    const status = await raw(
      a.app.httpPort!,
      "GET /api/v1/clients HTTP/1.1\r\nHost: rebound.evil.example\r\nConnection: close\r\n\r\n",
    );
    assert.match(status, / 403 /);
    r = await fetch(`${a.base}/api/v1/publish`, post(msg)); // curl, a script: no Origin
    assert.equal(r.status, 200);
    await r.body?.cancel();
  });

  test("publish: $SYS is the broker's; past max-bytes-in-message 413", TIMEOUT, async () => {
    const a = await start({ maxBytesInMessage: 1000 });
    let r = await a.api("/api/v1/publish", post({ topic: "$SYS/broker/version", payload: "x" }));
    assert.equal(r.status, 400);
    await r.body?.cancel();
    r = await a.api("/api/v1/publish", post({ topic: "big", payload: "x".repeat(2000) }));
    assert.equal(r.status, 413);
    await r.body?.cancel();
  });

  test("the Bearer scheme is case-insensitive (RFC 9110 11.1)", TIMEOUT, async () => {
    const a = await start();
    const token = (await a.api("/api/v1/clients")).status; // with "Bearer "
    assert.equal(token, 200);
    const r = await fetch(`${a.base}/api/v1/clients`, {
      headers: { authorization: `bearer ${"test-token-0123456789"}` },
    });
    assert.equal(r.status, 200);
    await r.body?.cancel();
  });

  test("a method the endpoint does not take: 405, with Allow", TIMEOUT, async () => {
    const a = await start();
    const r = await fetch(`${a.base}/health`, { method: "POST", body: "x" });
    assert.equal(r.status, 405);
    assert.equal(r.headers.get("allow"), "GET, HEAD");
    await r.body?.cancel();
  });

  test("an IPv6 host is bracketed once", () => {
    assert.equal(hostPort("[::1]", 80), "[::1]:80");
    assert.equal(hostPort("::1", 80), "[::1]:80");
  });
});
