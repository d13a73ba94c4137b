/**
 * The Conn/Listener contract, checked against the adapter of whichever runtime
 * runs this file (Deno or Bun), with node:net as the peer.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import * as net from "node:net";
import { Buffer } from "node:buffer";
import { testRuntime } from "./helpers/harness.ts";
import type { Listener, TransportConn as Conn } from "../src/runtime/types.ts";

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

// ---------------------------------------------------------------- Bun: the callback path
// Bun's Conn offers start/write (what the broker uses); these pin the Bun facts it relies on.

const onBun = !("Deno" in globalThis);

/** Everything a started Conn receives, and how often `end` came. */
function collectCallbacks(conn: Conn, data?: (chunk: Uint8Array) => void | Promise<void>) {
  const chunks: Uint8Array[] = [];
  let ends = 0;
  let resolveEnd!: () => void;
  const ended = new Promise<void>((r) => resolveEnd = r);
  conn.start!({
    data(chunk) {
      chunks.push(chunk);
      return data?.(chunk);
    },
    end() {
      ends++;
      resolveEnd();
    },
  });
  return {
    chunks,
    ended,
    get ends() {
      return ends;
    },
    bytes: () => Buffer.concat(chunks),
  };
}

/** A bounded wait for `p`. */
function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out: ${what}`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

/** Write everything with Conn.write, waiting whenever it returns a promise. */
async function writeAll(conn: Conn, data: Uint8Array, piece: number): Promise<number> {
  let waits = 0;
  for (let at = 0; at < data.length; at += piece) {
    const pending = conn.write!(data.subarray(at, at + piece));
    if (pending) {
      waits++;
      await pending;
    }
  }
  return waits;
}

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
    const client = await connect(listener.port);
    client.pause(); // let the server's send buffer fill up
    await sleep(100);
    const got = readAll(client);
    client.resume();
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

// ---------------------------------------------------------------- both runtimes: the callback path
// The contract of `start`/`write` (src/runtime/types.ts), whichever adapter runs this file.

describe("runtime adapter Conn callback path (start/write)", () => {
  /** A listener whose connections are handed out with their callback methods checked. */
  async function serveCallbacks(onConn: (conn: Required<Conn>) => void): Promise<Listener> {
    return await serve((conn) => {
      assert.equal(typeof conn.start, "function", "the adapter offers start()");
      assert.equal(typeof conn.write, "function", "the adapter offers write()");
      onConn(conn as Required<Conn>);
    });
  }

  const concat = (parts: Uint8Array[]) => Buffer.concat(parts.map((p) => Buffer.from(p)));

  test("echoes 1 MB sent in uneven chunks; chunks stay the receiver's; end comes once", async () => {
    const kept: Uint8Array[] = [];
    let ends = 0;
    let ended!: () => void;
    const endedOnce = new Promise<void>((r) => ended = r);
    const listener = await serveCallbacks((conn) => {
      conn.start({
        data(chunk) {
          kept.push(chunk);
          return conn.write(chunk);
        },
        end() {
          ends++;
          conn.close();
          ended();
        },
      });
    });
    const client = await connect(listener.port);
    const echoed = readAll(client);
    const data = pattern(MB);
    for (let at = 0, n = 1; at < data.length; at += n, n = (n * 7 + 13) % 9000 + 1) {
      client.write(data.subarray(at, at + n));
    }
    client.end();
    const got = await within(echoed, 4000, "echo");
    await within(endedOnce, 4000, "end");
    await sleep(20);
    await listener.close();
    assert.ok(Buffer.compare(got, Buffer.from(data)) === 0, "echoed bytes differ");
    // Later reads must not have overwritten chunks handed out earlier.
    assert.ok(Buffer.compare(concat(kept), Buffer.from(data)) === 0, "kept chunks changed");
    assert.equal(ends, 1);
  });

  test("a pending data() promise stops delivery until it settles (read backpressure)", async () => {
    const kept: Uint8Array[] = [];
    let busy = false;
    let overlapped = false;
    let done!: () => void;
    const finished = new Promise<void>((r) => done = r);
    const listener = await serveCallbacks((conn) => {
      conn.start({
        data(chunk) {
          if (busy) overlapped = true;
          kept.push(chunk);
          if (kept.length > 20) return;
          busy = true;
          return sleep(5).then(() => {
            busy = false;
          });
        },
        end() {
          conn.close();
          done();
        },
      });
    });
    const client = await connect(listener.port);
    const closed = readAll(client);
    const data = pattern(4 * MB);
    client.end(data);
    await within(finished, 10_000, "end");
    await within(closed, 4000, "peer close");
    await listener.close();
    assert.equal(overlapped, false, "data() was called while its last promise was pending");
    assert.ok(Buffer.compare(concat(kept), Buffer.from(data)) === 0, "bytes differ");
  });

  test("write() gets 8 MB to a slow reader intact (short writes), one write at a time", async () => {
    let done!: Promise<void>;
    const data = pattern(8 * MB);
    const listener = await serveCallbacks((conn) => {
      conn.start({ data() {}, end() {} });
      done = (async () => {
        for (let at = 0; at < data.length; at += 2 * MB) {
          await conn.write(data.subarray(at, at + 2 * MB));
        }
        conn.close();
      })();
    });
    const client = await connect(listener.port);
    client.pause(); // let the server's send buffer fill up
    await sleep(100);
    const got = readAll(client);
    client.resume();
    const bytes = await within(got, 10_000, "8 MB");
    await within(done, 4000, "writes");
    await listener.close();
    assert.equal(bytes.length, data.length);
    assert.ok(Buffer.compare(bytes, Buffer.from(data)) === 0, "received bytes differ");
  });

  test("write(bytes, length) sends only the first length bytes, short writes included", async () => {
    let done!: Promise<void>;
    const data = pattern(4 * MB);
    const listener = await serveCallbacks((conn) => {
      conn.start({ data() {}, end() {} });
      done = (async () => {
        await conn.write(data, 5); // a small prefix
        await conn.write(data.subarray(5), 3 * MB); // big: the slow reader forces short writes
        conn.close();
      })();
    });
    const client = await connect(listener.port);
    client.pause();
    await sleep(100);
    const got = readAll(client);
    client.resume();
    const bytes = await within(got, 10_000, "3 MB");
    await within(done, 4000, "writes");
    await listener.close();
    assert.equal(bytes.length, 5 + 3 * MB);
    assert.ok(Buffer.compare(bytes, Buffer.from(data.subarray(0, 5 + 3 * MB))) === 0);
  });

  test("a peer reset ends the input once; write() then rejects; close() is idempotent", async () => {
    let server!: Required<Conn>;
    let ends = 0;
    let ended!: () => void;
    const endedOnce = new Promise<void>((r) => ended = r);
    const listener = await serveCallbacks((conn) => {
      server = conn;
      conn.start({
        data() {},
        end() {
          ends++;
          ended();
        },
      });
      assert.throws(() => conn.readable, /Cannot read/);
      assert.throws(() => conn.start({ data() {}, end() {} }), /Cannot start/);
    });
    const client = await connect(listener.port);
    client.write("hello");
    await sleep(20);
    client.resetAndDestroy();
    await within(endedOnce, 4000, "end");
    const bytes = new Uint8Array(1024);
    await assert.rejects(async () => {
      // The first write after a reset may still be taken by the kernel; a few more may not.
      for (let i = 0; i < 50; i++) {
        await server.write(bytes);
        await sleep(2);
      }
    });
    server.close();
    server.close();
    await assert.rejects(async () => await server.write(bytes));
    await sleep(20);
    await listener.close();
    assert.equal(ends, 1);
  });

  // The read buffer is the Deno adapter's: registered only on Deno.
  ("Deno" in globalThis ? test : () => {})(
    "Deno: a quiet connection reads into a small buffer; a burst grows it",
    async () => {
      const sizes: number[] = [];
      const kept: Uint8Array[] = [];
      let release!: () => void;
      const burstWritten = new Promise<void>((r) => release = r);
      let done!: () => void;
      const finished = new Promise<void>((r) => done = r);
      const listener = await serveCallbacks((conn) => {
        conn.start({
          data(chunk) {
            sizes.push(chunk.buffer.byteLength);
            kept.push(chunk);
            // Hold on after the first chunk until the burst sits in the socket.
            if (kept.length === 1) return burstWritten;
          },
          end() {
            conn.close();
            done();
          },
        });
      });
      const client = await connect(listener.port);
      const closed = readAll(client);
      const first = pattern(10);
      client.write(first);
      await sleep(30);
      const burst = pattern(MB);
      client.end(burst, () => release());
      await within(finished, 4000, "end");
      await within(closed, 4000, "peer close");
      await listener.close();
      assert.ok(sizes[0] <= 1024, `an idle read holds ${sizes[0]} bytes`);
      assert.ok(Math.max(...sizes) >= 16 * 1024, `reads never grew: ${sizes.slice(0, 10)}`);
      assert.ok(Math.max(...sizes) <= 64 * 1024);
      const expected = Buffer.concat([Buffer.from(first), Buffer.from(burst)]);
      assert.ok(Buffer.compare(concat(kept), expected) === 0, "bytes differ");
    },
  );
});
