/**
 * The Conn/Listener contract, checked against the adapter of whichever runtime
 * runs this file (Deno or Bun), with node:net as the peer.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { testRuntime } from "./helpers/harness.ts";
import type { TransportConn as Conn } from "../src/runtime/types.ts";
import {
  collectCallbacks,
  connect,
  drainReadable,
  MB,
  pattern,
  readAll,
  readAllLate,
  serve,
  sleep,
  within,
  writeAll,
} from "./helpers/runtime_conn.ts";

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
    const bytes = await readAllLate(listener.port);
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

// ---------------------------------------------------------------- Bun: the callback path
// Bun's Conn offers start/write (what the broker uses); these pin the Bun facts it relies on.

const onBun = !("Deno" in globalThis);

// Bun's own adapter details: registered only where they can run, so no run reports a skip.
(onBun ? describe : () => {})("Bun adapter: callback path (start/write)", () => {
  test("offers start/write, and the chunks it delivers are fresh buffers (kept, not copied)", async () => {
    let got!: ReturnType<typeof collectCallbacks>;
    const listener = await serve((conn) => {
      assert.equal(typeof conn.start, "function");
      assert.equal(typeof conn.write, "function");
      got = collectCallbacks(conn);
    });
    const client = await connect(listener.port);
    const data = pattern(MB);
    for (let at = 0, n = 1; at < data.length; at += n, n = (n * 7 + 13) % 9000 + 1) {
      client.write(data.subarray(at, at + n));
    }
    client.end();
    await within(got.ended, 4000, "end");
    await listener.close();
    // Had Bun reused a chunk's memory for a later read, the kept chunks would differ.
    assert.ok(Buffer.compare(got.bytes(), Buffer.from(data)) === 0, "received bytes differ");
    assert.ok(got.chunks.length > 1);
    assert.equal(new Set(got.chunks.map((c) => c.buffer)).size, got.chunks.length);
    assert.equal(got.ends, 1);
  });

  test("a write that returns nothing is done: the caller reuses its buffer at once", async () => {
    let sync = 0;
    const buf = new Uint8Array(16 * 1024);
    const listener = await serve(async (conn) => {
      collectCallbacks(conn);
      for (let i = 0; i < 32; i++) {
        buf.fill(65 + (i % 26));
        const pending = conn.write!(buf);
        if (pending) await pending;
        else sync++;
        buf.fill(0); // would corrupt the stream if Bun still referenced buf
      }
      conn.close();
    });
    const client = await connect(listener.port);
    const got = await within(readAll(client), 4000, "peer close");
    await listener.close();
    assert.ok(sync > 0, "no write completed at once: the test proved nothing");
    assert.equal(got.length, 32 * 16 * 1024);
    for (let i = 0; i < 32; i++) {
      const block = got.subarray(i * 16384, (i + 1) * 16384);
      assert.ok(block.every((b) => b === 65 + (i % 26)), `block ${i} was corrupted`);
    }
  });

  test("a slow reader gets 8 MB intact: partial writes return a promise settled on drain", async () => {
    const data = pattern(8 * MB);
    let done!: Promise<number>;
    const listener = await serve((conn) => {
      collectCallbacks(conn);
      done = writeAll(conn, data, 2 * MB).finally(() => conn.close());
    });
    const got = readAllLate(listener.port);
    const bytes = await within(got, 10_000, "8 MB");
    const waits = await done;
    await listener.close();
    assert.ok(waits > 0, "no write was partial: the test did not exercise drain");
    assert.equal(bytes.length, data.length);
    assert.ok(Buffer.compare(bytes, Buffer.from(data)) === 0, "received bytes differ");
  });

  test("a data promise stops delivery until it settles; order is kept (read backpressure)", async () => {
    let busy = false;
    let overlapped = 0;
    let got!: ReturnType<typeof collectCallbacks>;
    const listener = await serve((conn) => {
      let n = 0;
      got = collectCallbacks(conn, () => {
        if (busy) overlapped++;
        if (n++ % 3 !== 0) return;
        busy = true;
        return sleep(5).then(() => void (busy = false));
      });
    });
    const client = await connect(listener.port);
    const data = pattern(4 * MB);
    client.end(data);
    await within(got.ended, 10_000, "end");
    await within(readAll(client), 4000, "peer close");
    await listener.close();
    assert.equal(overlapped, 0, "data was delivered while a promise was pending");
    assert.ok(Buffer.compare(got.bytes(), Buffer.from(data)) === 0, "received bytes differ");
    assert.equal(got.ends, 1);
  });

  test("bytes and the end that arrive before start() are delivered once it is called", async () => {
    let conn!: Conn;
    const listener = await serve((c) => conn = c);
    const client = await connect(listener.port);
    const closed = readAll(client);
    client.end("early bytes");
    await sleep(30);
    const got = collectCallbacks(conn);
    await within(got.ended, 4000, "end");
    await within(closed, 4000, "peer close");
    await listener.close();
    assert.equal(got.bytes().toString(), "early bytes");
    assert.equal(got.ends, 1);
  });

  test("a peer reset ends once; writing afterwards rejects; close() stays safe", async () => {
    let conn!: Conn;
    let got!: ReturnType<typeof collectCallbacks>;
    const listener = await serve((c) => {
      conn = c;
      got = collectCallbacks(c);
    });
    const client = await connect(listener.port);
    await sleep(20);
    client.resetAndDestroy();
    await within(got.ended, 4000, "end");
    await assert.rejects(Promise.resolve(conn.write!(new Uint8Array([1, 2, 3]))), /closed/);
    assert.doesNotThrow(() => conn.close());
    await listener.close();
    assert.equal(got.ends, 1);
  });

  test("a Conn started with callbacks refuses its streams (one reader only)", async () => {
    let conn!: Conn;
    const listener = await serve((c) => {
      conn = c;
      collectCallbacks(c);
    });
    const client = await connect(listener.port);
    await sleep(20);
    assert.throws(() => conn.readable, /started with callbacks/);
    client.destroy();
    await listener.close();
    conn.close();
  });
});
