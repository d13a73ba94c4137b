/**
 * The Conn/Listener contract, checked against the adapter of whichever runtime
 * runs this file (Deno or Bun), with node:net as the peer.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import * as net from "node:net";
import { Buffer } from "node:buffer";
import { testRuntime } from "./helpers/harness.ts";
import type { Conn, Listener } from "../src/runtime/types.ts";

const MB = 1024 * 1024;

/** Deterministic bytes whose position is recoverable, so reordering or loss shows. */
function pattern(size: number): Uint8Array {
  const out = new Uint8Array(size);
  for (let i = 0; i < size; i++) out[i] = (i * 31 + (i >> 8)) & 0xff;
  return out;
}

async function serve(onConn: (conn: Conn) => void): Promise<Listener> {
  const runtime = await testRuntime();
  return runtime.listen({ hostname: "127.0.0.1", port: 0 }, onConn);
}

function connect(port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ port, host: "127.0.0.1" }, () => resolve(s));
    s.once("error", reject);
  });
}

/** Everything the peer sends until it closes. */
function readAll(s: net.Socket): Promise<Buffer> {
  const parts: Buffer[] = [];
  s.on("data", (d: Buffer) => parts.push(d));
  return new Promise((resolve, reject) => {
    s.once("error", reject);
    s.once("close", () => resolve(Buffer.concat(parts)));
  });
}

async function drainReadable(conn: Conn): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  let size = 0;
  const reader = conn.readable.getReader();
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    parts.push(value);
    size += value.byteLength;
  }
  const out = new Uint8Array(size);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.byteLength;
  }
  return out;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe("runtime adapter Conn contract", () => {
  test("echoes 1 MB sent in many uneven chunks, then closes when the client ends", async () => {
    const remotes: string[] = [];
    const listener = await serve((conn) => {
      remotes.push(conn.remoteAddr);
      conn.readable.pipeTo(conn.writable).catch(() => conn.close());
    });
    const client = await connect(listener.port);
    const localPort = client.localPort;
    const echoed = readAll(client);
    const data = pattern(MB);
    for (let at = 0, n = 1; at < data.length; at += n, n = (n * 7 + 13) % 9000 + 1) {
      client.write(data.subarray(at, at + n));
    }
    client.end();
    const got = await echoed;
    await listener.close();
    assert.equal(got.length, data.length);
    assert.ok(Buffer.compare(got, Buffer.from(data)) === 0, "echoed bytes differ");
    assert.equal(remotes.length, 1);
    assert.match(remotes[0], /^127\.0\.0\.1:\d+$/);
    assert.equal(remotes[0], `127.0.0.1:${localPort}`);
  });

  test("server-side close delivers what was written, ends the peer, and is idempotent", async () => {
    let serverConn: Conn | undefined;
    const listener = await serve(async (conn) => {
      serverConn = conn;
      const w = conn.writable.getWriter();
      await w.write(new TextEncoder().encode("bye"));
      w.releaseLock();
      conn.close();
      conn.close();
    });
    const client = await connect(listener.port);
    const got = await readAll(client);
    await listener.close();
    assert.equal(got.toString(), "bye");
    assert.ok(serverConn);
    assert.doesNotThrow(() => serverConn!.close());
  });

  test("a slow reader gets 8 MB written in big writes, intact (partial writes / drain)", async () => {
    let done!: Promise<void>;
    // More than a socket send buffer takes at once, so Bun's write() returns short.
    const data = pattern(8 * MB);
    const listener = await serve((conn) => {
      done = (async () => {
        const w = conn.writable.getWriter();
        for (let at = 0; at < data.length; at += 2 * MB) {
          await w.write(data.subarray(at, at + 2 * MB));
        }
        await w.close();
      })();
    });
    const client = await connect(listener.port);
    client.pause(); // let the server's send buffer fill up
    await sleep(100);
    const got = readAll(client);
    client.resume();
    const bytes = await got;
    await done;
    await listener.close();
    assert.equal(bytes.length, data.length);
    assert.ok(Buffer.compare(bytes, Buffer.from(data)) === 0, "received bytes differ");
  });

  test("a server that reads late still gets every byte in order (read backpressure)", async () => {
    let received!: Promise<Uint8Array>;
    const listener = await serve((conn) => {
      received = sleep(100).then(() => drainReadable(conn)).finally(() => conn.close());
    });
    const client = await connect(listener.port);
    const closed = readAll(client);
    const data = pattern(4 * MB);
    client.end(data);
    await sleep(10);
    const bytes = await received;
    await closed;
    await listener.close();
    assert.equal(bytes.length, data.length);
    assert.ok(Buffer.compare(Buffer.from(bytes), Buffer.from(data)) === 0, "bytes differ");
  });

  test("a peer that resets does not stop the accept loop", async () => {
    const seen: string[] = [];
    const listener = await serve((conn) => {
      seen.push(conn.remoteAddr);
      drainReadable(conn).catch(() => {}).finally(() => conn.close());
    });
    const rude = await connect(listener.port);
    rude.resetAndDestroy();
    await sleep(20);
    const polite = await connect(listener.port);
    const localPort = polite.localPort;
    polite.end("x");
    await readAll(polite);
    await listener.close();
    assert.ok(seen.length >= 1);
    assert.equal(seen[seen.length - 1], `127.0.0.1:${localPort}`);
  });

  test("listener.close() stops accepting but leaves live connections alone", async () => {
    const conns: Conn[] = [];
    const listener = await serve((conn) => {
      conns.push(conn);
      conn.readable.pipeTo(conn.writable).catch(() => conn.close());
    });
    const live = await connect(listener.port);
    const echoed = readAll(live);
    await sleep(20);
    await listener.close();
    await listener.close(); // idempotent
    await assert.rejects(connect(listener.port), /ECONNREFUSED/);
    live.end("still here");
    assert.equal((await echoed).toString(), "still here");
    assert.equal(conns.length, 1);
  });

  test("listening on a busy port rejects", async () => {
    const first = await serve(() => {});
    const runtime = await testRuntime();
    await assert.rejects(runtime.listen({ hostname: "127.0.0.1", port: first.port }, () => {}));
    await first.close();
  });
});
