/**
 * A macrotask that Deno runs only after it has polled its sockets (`Runtime.ioTurn`).
 *
 * Deno's event loop asks the OS for socket readiness (`epoll_wait`) only when it runs out of
 * ready work, or every 61 scheduler ticks (tokio's `event_interval`), and a socket whose last
 * read did not drain it is read again without asking. Under S2 (100 QoS 1 publishers into one
 * subscriber) the publishers' input always has more to read, so `setImmediate` turns ran one
 * after another with no poll between them: the subscriber's PUBACKs were read once per ~4,300
 * PUBLISHes handled (strace: one `epoll_wait` per ~4.4 ms, the subscriber's 400-byte chunk read
 * last), and its inflight window stayed full.
 *
 * Here a turn is a byte written into a loopback socket whose other end we read: it runs when
 * that byte is read, and that read needs a poll. Two pairs are used in turn, so the one written
 * to has already found its input drained (its reader then waits for the poll) instead of being
 * read again at once; the poll returns at once (the byte is there) and also reports every other
 * socket ready by then. A timer would do the same only after the loop had idled until it was
 * due (~1-2 ms per turn: half the publishers' ingest).
 *
 * The pairs live while a listener does (`openIoTurn` / `closeIoTurn`, counted); without them a
 * turn is a `setImmediate`.
 */
import * as net from "node:net";
import { setImmediate } from "node:timers";

interface WakePair {
  writer: net.Socket;
  reader: net.Socket;
}

const ONE = new Uint8Array(1);
let pairs: WakePair[] = [];
let users = 0;
let opening: Promise<void> | undefined;
let next = 0;
let queued: (() => void)[] = [];
let written = false;

/** True while ioTurn waits for a poll, not a `setImmediate` (the pairs are open). */
export function ioTurnPolls(): boolean {
  return pairs.length === 2;
}

/** Run `f` once the event loop has polled for I/O (falls back to `setImmediate`). */
export function ioTurn(f: () => void): void {
  queued.push(f);
  if (written) return;
  if (pairs.length < 2) return void setImmediate(runQueued);
  written = true;
  pairs[next].writer.write(ONE);
  next ^= 1;
}

function runQueued(): void {
  written = false;
  const run = queued;
  queued = [];
  for (const f of run) f();
}

/** A listener starts: make sure the pairs exist. */
export function openIoTurn(): Promise<void> {
  users++;
  if (pairs.length === 2) return Promise.resolve();
  return opening ??= Promise.all([makePair(), makePair()]).then((made) => {
    opening = undefined;
    if (users > 0) pairs = made;
    else for (const p of made) destroy(p);
  }, () => {
    opening = undefined; // turns stay setImmediates
  });
}

/** A listener stops; the last one closes the pairs. Settles once their sockets are closed. */
export async function closeIoTurn(): Promise<void> {
  if (--users > 0) return;
  await opening;
  if (users > 0) return;
  const closing = pairs;
  pairs = [];
  if (written) setImmediate(runQueued); // its byte will not be read now
  await Promise.all(closing.map(destroy));
}

/** A pair closed under us (not by closeIoTurn): turns are setImmediates from now on. */
function lost(p: WakePair): void {
  if (!pairs.includes(p)) return;
  for (const other of pairs) destroy(other);
  pairs = [];
  if (written) setImmediate(runQueued); // its byte may never be read
}

function destroy(p: WakePair): Promise<void> {
  const closed = (s: net.Socket) =>
    new Promise<void>((resolve) => {
      if (s.destroyed && s.closed) return resolve();
      s.once("close", () => resolve());
      s.destroy();
    });
  return Promise.all([closed(p.writer), closed(p.reader)]).then(() => {});
}

/** A connected loopback pair; only our own connect is accepted. */
function makePair(): Promise<WakePair> {
  return new Promise((resolve, reject) => {
    let writer: net.Socket | undefined;
    let connected = false;
    const accepted: net.Socket[] = [];
    // Anyone on this host may connect to the port meanwhile: take only our own socket.
    const match = () => {
      if (!connected) return;
      const reader = accepted.find((r) => r.remotePort === writer!.localPort);
      if (!reader) return;
      server.close();
      for (const r of accepted) if (r !== reader) r.destroy();
      reader.on("data", runQueued);
      reader.on("error", () => {});
      reader.unref();
      const pair = { writer: writer!, reader };
      reader.once("close", () => lost(pair));
      writer!.once("close", () => lost(pair));
      resolve(pair);
    };
    const server = net.createServer({ noDelay: true }, (socket) => {
      accepted.push(socket);
      match();
    });
    server.once("error", reject);
    server.listen({ host: "127.0.0.1", port: 0 }, () => {
      const port = (server.address() as net.AddressInfo).port;
      writer = net.connect({ host: "127.0.0.1", port, noDelay: true }, () => {
        connected = true;
        match();
      });
      writer.on("error", (e) => {
        server.close();
        reject(e);
      });
      writer.unref();
    });
  });
}
