/**
 * Deno gives memory back after a burst of connections (src/runtime/deno_memory.ts): a full GC
 * (then malloc_trim) once the accepts stop. Deno only: Bun's idle connections are small without
 * it (bench/notes/deno.md), so under Bun this file has nothing to check.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import * as net from "node:net";

const isDeno = "Deno" in globalThis;
const mem = isDeno ? await import("../src/runtime/deno_memory.ts") : undefined;
const TIMEOUT = { timeout: 90_000 };

/** Open `n` client connections to `port`, 100 at a time, into `clients`. */
async function openBurst(port: number, n: number, clients: net.Socket[]): Promise<void> {
  for (let i = 0; i < n; i += 100) {
    await Promise.all(
      Array.from(
        { length: Math.min(100, n - i) },
        () =>
          new Promise<void>((resolve, reject) => {
            const s = net.connect(port, "127.0.0.1", () => resolve());
            s.on("error", reject);
            clients.push(s);
          }),
      ),
    );
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Poll `done` every 50 ms for up to `ms` (the caller asserts what it waited for). */
async function waitUntil(done: () => boolean, ms = 30_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!done() && Date.now() < deadline) await sleep(50);
}

function heapUsed(): number {
  return Deno.memoryUsage().heapUsed;
}

/**
 * A Deno runtime listener that collects its accepted connections; `body` gets the clients it
 * opens in `clients`; everything is closed afterwards.
 */
async function withListener(
  body: (port: number, accepted: { close(): void }[], clients: net.Socket[]) => Promise<void>,
): Promise<void> {
  const { denoRuntime } = await import("../src/runtime/deno.ts");
  const accepted: { close(): void }[] = [];
  const listener = await denoRuntime.listen(
    { hostname: "127.0.0.1", port: 0 },
    (conn) => accepted.push(conn),
  );
  const clients: net.Socket[] = [];
  try {
    await body(listener.port, accepted, clients);
  } finally {
    for (const s of clients) s.destroy();
    for (const c of accepted) c.close();
    await listener.close();
  }
}

describe("Deno memory reclaim", { skip: !isDeno }, () => {
  test("reclaimMemory frees garbage the idle loop would keep", TIMEOUT, () => {
    // Objects that survive a few scavenges (held while more are made) end in the old
    // generation, where only a major GC frees them; an idle process never runs one.
    let held: { a: number; b: string }[] | undefined = [];
    for (let i = 0; i < 400_000; i++) held.push({ a: i, b: `s${i}` });
    const withGarbage = heapUsed();
    held = undefined;
    mem!.reclaimMemory();
    const after = heapUsed();
    assert.ok(
      withGarbage - after > 10 * 1024 * 1024,
      `heap used ${withGarbage} -> ${after} bytes: expected over 10 MB freed`,
    );
  });

  test(
    "a burst of connections is followed by one reclaim, and its late rest by one more",
    TIMEOUT,
    () =>
      withListener(async (port, accepted, clients) => {
        const before = mem!.burstReclaims();
        const openClients = (n: number) => openBurst(port, n, clients);
        await openClients(mem!.BURST_CONNECTIONS);
        await waitUntil(() => accepted.length >= mem!.BURST_CONNECTIONS);
        assert.equal(accepted.length, mem!.BURST_CONNECTIONS);
        // Quiet now: within a few check intervals the reclaim has run, once.
        await waitUntil(() => mem!.burstReclaims() !== before);
        assert.equal(mem!.burstReclaims(), before + 1);
        // The burst goes on after its reclaim with fewer than BURST_CONNECTIONS: one more.
        await openClients(mem!.FOLLOW_UP_CONNECTIONS);
        await waitUntil(() => mem!.burstReclaims() !== before + 1);
        assert.equal(mem!.burstReclaims(), before + 2);
      }),
  );

  test(
    "a burst's reclaim waits while the process is busy (its full GC would stall traffic)",
    TIMEOUT,
    () =>
      withListener(async (port, _accepted, clients) => {
        const deferredBefore = mem!.reclaimsDeferred();
        await openBurst(port, mem!.BURST_CONNECTIONS, clients);
        // A reclaim already due (the test before closed its clients) waits like this burst's.
        const before = mem!.burstReclaims();
        // Busy: the event loop spins 100 ms of every ~100 ms for 4 check intervals (far above
        // BUSY_SHARE even with the CPU shared), so no reclaim may run, and checks defer it.
        const busyUntil = Date.now() + 4 * mem!.RECLAIM_CHECK_MS;
        while (Date.now() < busyUntil) {
          const t = Date.now();
          while (Date.now() - t < 100) { /* spin */ }
          await new Promise((r) => setImmediate(r));
        }
        assert.equal(mem!.burstReclaims(), before, "reclaimed while busy");
        assert.ok(mem!.reclaimsDeferred() > deferredBefore, "no check found the process busy");
        // Quiet again: it runs.
        await waitUntil(() => mem!.burstReclaims() !== before);
        assert.equal(mem!.burstReclaims(), before + 1);
      }),
  );
});
