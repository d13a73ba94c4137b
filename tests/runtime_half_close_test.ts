/**
 * The Conn half-close (`endWrite`), on the adapters of the runtime running
 * this file, TCP and TLS: what was written arrives, then the peer sees the
 * end of our output, and what the peer still sends is delivered until it
 * closes too.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import * as net from "node:net";
import * as tls from "node:tls";
import { Buffer } from "node:buffer";
import { mustRun, testRuntime } from "./helpers/harness.ts";
import { makePki, opensslAvailable, type TestPki } from "./helpers/certs.ts";
import type { Listener, TransportConn as Conn } from "../src/runtime/types.ts";

const haveOpenssl = opensslAvailable();
let pki: TestPki | undefined;
before(() => {
  if (haveOpenssl) pki = makePki();
});
after(() => pki?.remove());

interface Served {
  listener: Listener;
  conn: Promise<Conn>;
}

async function serve(secure: boolean): Promise<Served> {
  const runtime = await testRuntime();
  let got!: (c: Conn) => void;
  const conn = new Promise<Conn>((r) => (got = r));
  const opts = { hostname: "127.0.0.1", port: 0 };
  const listener = secure
    ? await runtime.listenTls({
      ...opts,
      credentials: { cert: pki!.read(pki!.server.cert), key: pki!.read(pki!.server.key) },
      clientAuth: "NONE",
    }, got)
    : await runtime.listen(opts, got);
  return { listener, conn };
}

/** Everything the Conn delivers until its input ends, through whichever path it offers. */
async function readAll(c: Conn): Promise<string> {
  const parts: Uint8Array[] = [];
  if (c.start) {
    await new Promise<void>((end) =>
      c.start!({ data: (b) => void parts.push(b.slice()), end: () => end() })
    );
  } else {
    const reader = c.readable.getReader();
    for (let r = await reader.read(); !r.done; r = await reader.read()) parts.push(r.value);
  }
  return Buffer.concat(parts).toString();
}

async function writeAll(c: Conn, bytes: Uint8Array): Promise<void> {
  if (c.write) return await c.write(bytes);
  const w = c.writable.getWriter();
  await w.write(bytes);
  w.releaseLock();
}

function connect(port: number, secure: boolean): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s: net.Socket = secure
      ? tls.connect({ host: "127.0.0.1", port, ca: pki!.read(pki!.caFile) }, () => resolve(s))
      : net.connect({ host: "127.0.0.1", port }, () => resolve(s));
    s.once("error", reject);
  });
}

for (const secure of [false, true]) {
  const skip = secure && !haveOpenssl && !mustRun() ? "openssl not on PATH" : false;
  describe(`Conn.endWrite over ${secure ? "TLS" : "TCP"}`, { skip }, () => {
    test("the peer reads our last bytes, then the end; its later bytes still arrive", async () => {
      const { listener, conn } = await serve(secure);
      const client = await connect(listener.port, secure);
      const fromServer: Buffer[] = [];
      client.on("data", (d: Buffer) => fromServer.push(d));
      // The peer answers our end with more bytes, then ends too.
      client.once("end", () => client.end("still talking"));
      const c = await conn;
      assert.equal(typeof c.endWrite, "function");
      const input = readAll(c);
      await writeAll(c, new TextEncoder().encode("last words"));
      c.endWrite!();
      assert.equal(await input, "still talking");
      assert.equal(Buffer.concat(fromServer).toString(), "last words");
      c.close();
      await listener.close();
    });
  });
}
