/**
 * The Runtime.serveHttp contract (Deno.serve / Bun.serve behind the adapter),
 * checked against the adapter of whichever runtime runs this file.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { testRuntime } from "./helpers/harness.ts";

test("serveHttp: sync and async answers, request bodies, a throwing handler, busy port, close", {
  timeout: 30_000,
}, async () => {
  const runtime = await testRuntime();
  const server = await runtime.serveHttp({ hostname: "127.0.0.1", port: 0 }, async (req) => {
    const path = new URL(req.url).pathname;
    if (path === "/sync") return new Response("sync", { headers: { "x-kind": "sync" } });
    if (path === "/echo") return new Response(`${req.method} ${await req.text()}`, { status: 201 });
    if (path === "/boom") throw new Error("handler failed");
    await new Promise((r) => setTimeout(r, 10));
    return Response.json({ path });
  });
  const base = `http://127.0.0.1:${server.port}`;
  try {
    assert.ok(server.port > 0);
    let r = await fetch(`${base}/sync`);
    assert.equal(r.headers.get("x-kind"), "sync");
    assert.equal(await r.text(), "sync");
    r = await fetch(`${base}/echo`, { method: "POST", body: "hello" });
    assert.equal(r.status, 201);
    assert.equal(await r.text(), "POST hello");
    assert.deepEqual(await (await fetch(`${base}/later`)).json(), { path: "/later" });
    r = await fetch(`${base}/boom`);
    assert.equal(r.status, 500); // the server survives a throwing handler
    await r.body?.cancel();
    assert.equal((await fetch(`${base}/sync`)).status, 200);
    await assert.rejects(
      runtime.serveHttp({ hostname: "127.0.0.1", port: server.port }, () => new Response()),
    );
  } finally {
    await server.close();
    await server.close(); // idempotent
  }
  await assert.rejects(fetch(`${base}/sync`));
});
