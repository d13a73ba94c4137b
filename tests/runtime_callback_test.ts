/**
 * The Conn callback path (`start`/`write`), checked against the adapter of whichever
 * runtime runs this file (Deno or Bun), with node:net as the peer.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import type { Listener, TransportConn as Conn } from "../src/runtime/types.ts";
import {
  connect,
  MB,
  pattern,
  readAll,
  readAllLate,
  serve,
  sleep,
  within,
} from "./helpers/runtime_conn.ts";

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
    const got = readAllLate(listener.port);
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
    const got = readAllLate(listener.port);
    const bytes = await within(got, 10_000, "3 MB");
    await within(done, 4000, "writes");
    await listener.close();
    assert.equal(bytes.length, 5 + 3 * MB);
    assert.ok(Buffer.compare(bytes, Buffer.from(data.subarray(0, 5 + 3 * MB))) === 0);
  });

  test("small writes of part of a reused buffer arrive intact while they queue", async () => {
    // The broker's shape: a pooled 16 KiB buffer, `length` bytes of it, refilled after each
    // write. The peer reads late, so the socket holds the writes (Deno: the handle keeps a
    // view and write() returns a promise).
    const buf = new Uint8Array(16 * 1024);
    const size = 300, count = 8000;
    const listener = await serveCallbacks(async (conn) => {
      conn.start({ data() {}, end() {} });
      for (let i = 0; i < count; i++) {
        buf.fill(i % 251, 0, size);
        const pending = conn.write(buf, size);
        // The contract: a returned promise means the bytes are still in use until it settles.
        if (pending) await pending;
        buf.fill(255, 0, size);
      }
      conn.close();
    });
    const got = await within(readAllLate(listener.port), 10_000, "small writes");
    await listener.close();
    assert.equal(got.length, size * count);
    for (let i = 0; i < count; i++) {
      const block = got.subarray(i * size, (i + 1) * size);
      assert.ok(block.every((b) => b === i % 251), `write ${i} was corrupted`);
    }
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

  test("close() right after writes still pending delivers them, then ends the peer", async () => {
    // A refused CONNECT's CONNACK then close(): the bytes must reach the peer even when the
    // socket kept them (on Deno a connection's first write always waits for writability).
    const data = pattern(256 * 1024);
    const listener = await serveCallbacks((conn) => {
      conn.start({ data() {}, end() {} });
      for (let at = 0; at < data.length; at += 64 * 1024) {
        conn.write(data.subarray(at, at + 64 * 1024))?.catch(() => {});
      }
      conn.close();
    });
    const got = await within(readAllLate(listener.port), 4000, "bytes and end");
    await listener.close();
    assert.ok(Buffer.compare(got, Buffer.from(data)) === 0, `got ${got.length} bytes`);
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

// Deno's plain TCP below node:net's streams (src/runtime/node_handle_io.ts, tcp_handles.ts): a
// Deno upgrade that drops a hook falls back to node:net silently, so these say when it happens.
("Deno" in globalThis ? test : () => {})(
  "Deno: listen() on an IP address hands out Conns on node:net's TCP handles (no Socket)",
  async () => {
    const { TcpHandleConn } = await import("../src/runtime/tcp_handle_conn.ts");
    const { NodeSocketConn } = await import("../src/runtime/node_socket_conn.ts");
    const { denoRuntime } = await import("../src/runtime/deno.ts");
    for (const [hostname, kind] of [["127.0.0.1", TcpHandleConn], ["localhost", NodeSocketConn]]) {
      let got!: (conn: Conn) => void;
      const accepted = new Promise<Conn>((r) => got = r);
      const listener = await denoRuntime.listen({ hostname: hostname as string, port: 0 }, got);
      const client = await connect(listener.port);
      const conn = await within(accepted, 4000, "accept");
      assert.ok(
        conn instanceof (kind as typeof TcpHandleConn),
        `${hostname}: ${conn.constructor.name}`,
      );
      assert.match(conn.remoteAddr, /^127\.0\.0\.1:\d+$/);
      conn.close();
      client.destroy();
      await listener.close();
    }
  },
);

("Deno" in globalThis ? test : () => {})(
  "Deno: plain TCP reads into the shared buffer and writes to the socket's handle",
  async () => {
    const { readIntoShared, directHandle } = await import("../src/runtime/node_handle_io.ts");
    const net = await import("node:net");
    let checked!: (ok: [boolean, boolean]) => void;
    const result = new Promise<[boolean, boolean]>((r) => checked = r);
    const server = net.createServer((socket) => {
      checked([readIntoShared(socket, () => {}), directHandle(socket) !== undefined]);
      socket.destroy();
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const client = net.connect((server.address() as { port: number }).port, "127.0.0.1");
    client.on("error", () => {});
    const [reads, writes] = await within(result, 4000, "accept");
    client.destroy();
    await new Promise<void>((r) => server.close(() => r()));
    assert.ok(reads, "reads into the shared buffer");
    assert.ok(writes, "writes to the handle");
  },
);
