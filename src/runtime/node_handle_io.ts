/**
 * Plain TCP on Deno's `node:net` below its streams: the socket's handle (a native TCPWrap on
 * Deno 2.9) reads into one shared buffer and takes writes directly. Each hook is used only
 * where this node:net has it (else the socket's public API), and TLS sockets never.
 *
 * Why: at a steady 10k msg/s each message is its own wake-up, and node:net's per-read and
 * per-write work (a backing store per read, the Readable and Writable streams, a WriteWrap,
 * a nextTick) was a good part of the broker's CPU per message (bench/notes/deno.md,
 * round five).
 */
import type { Socket } from "node:net";
import process from "node:process";

/**
 * Reads land in one buffer shared by every socket (node:net's `onread.buffer`, which Deno
 * honours through the socket's handle), and the receiver gets a copy of its own. Without it
 * each read made an ArrayBuffer with a native backing store of its own and passed it through
 * the socket's Readable stream to a "data" event (bench/notes/deno.md, round five).
 * A copy of up to 64 B lives in V8's heap; up to 512 B it is cut from a 1 KiB slab (a quiet
 * connection whose decoder keeps a partial packet pins at most that); larger, its own.
 */
export const READ_BUFFER = new Uint8Array(64 * 1024);
const SLAB_BYTES = 1024;
const SLAB_MAX_CHUNK = 512;
const ON_HEAP = 64; // V8 keeps typed arrays up to this size inside the object
let slab = new Uint8Array(SLAB_BYTES);
let slabUsed = 0;

/** A copy of READ_BUFFER[0, n) that the receiver owns. */
export function takeRead(n: number): Uint8Array {
  const read = READ_BUFFER.subarray(0, n);
  if (n > SLAB_MAX_CHUNK) return read.slice();
  let chunk: Uint8Array;
  if (n <= ON_HEAP) chunk = new Uint8Array(n);
  else {
    if (slabUsed + n > SLAB_BYTES) {
      slab = new Uint8Array(SLAB_BYTES);
      slabUsed = 0;
    }
    chunk = slab.subarray(slabUsed, slabUsed + n);
    slabUsed += (n + 7) & ~7;
  }
  chunk.set(read);
  return chunk;
}

/** node:net's own symbols for `onread` (own properties of every Socket), found once. */
let readSymbols: { buffer: symbol; callback: symbol } | null | undefined;

/**
 * Switch `socket` to reading into READ_BUFFER (onRead) where this node:net has the hooks
 * (Deno 2.9: `kBuffer`, `kBufferCb`, `handle.useUserBuffer`); false: keep "data" events.
 */
export function readIntoShared(socket: Socket, onRead: (this: Socket, n: number) => void): boolean {
  const handle = (socket as Socket & { _handle?: { useUserBuffer?: unknown } })._handle;
  // TLS decrypts in between: its sockets keep "data" events.
  if ((socket as Socket & { encrypted?: boolean }).encrypted) return false;
  if (typeof handle?.useUserBuffer !== "function") return false;
  if (readSymbols === undefined) {
    const own = Object.getOwnPropertySymbols(socket);
    const buffer = own.find((s) => s.description === "kBuffer");
    const callback = own.find((s) => s.description === "kBufferCb");
    readSymbols = buffer && callback ? { buffer, callback } : null;
  }
  if (!readSymbols) return false;
  const s = socket as unknown as Record<symbol, unknown>;
  if (s[readSymbols.buffer] !== null || s[readSymbols.callback] !== null) return false;
  s[readSymbols.callback] = onRead;
  s[readSymbols.buffer] = READ_BUFFER;
  (handle.useUserBuffer as (b: Uint8Array) => void).call(handle, READ_BUFFER);
  return true;
}

interface StreamHandle {
  writeBuffer(req: object, data: Uint8Array): number;
}
interface StreamBinding {
  streamBaseState: Int32Array;
  kLastWriteWasAsync: number;
  kReadBytesOrError: number;
}

/** node:net's stream-wrap binding: after a write, whether the handle kept the bytes. */
let binding: StreamBinding | null | undefined;

export function streamBinding(): StreamBinding | null {
  if (binding !== undefined) return binding;
  try {
    // deno-lint-ignore no-explicit-any
    const b = (process as any).binding("stream_wrap");
    binding =
      b?.streamBaseState instanceof Int32Array && typeof b.kLastWriteWasAsync === "number" &&
        typeof b.kReadBytesOrError === "number"
        ? b
        : null;
  } catch {
    binding = null;
  }
  return binding!;
}

/**
 * The socket's handle, when bytes can go to it directly: plain TCP, nothing queued in the
 * socket's own stream (a write there must go first), and this node:net has the binding.
 */
export function directHandle(socket: Socket): StreamHandle | undefined {
  if ((socket as Socket & { encrypted?: boolean }).encrypted || socket.writableLength > 0) return;
  const handle = (socket as Socket & { _handle?: Partial<StreamHandle> })._handle;
  if (typeof handle?.writeBuffer !== "function" || !streamBinding()) return;
  return handle as StreamHandle;
}

/**
 * Write `bytes` to the handle: a negative error code, 0 when the OS took them all, or 1
 * when the handle keeps them (a view, not a copy) and calls `req.oncomplete(status)` once
 * they were sent; `req` holds `bytes` until then.
 */
export function writeToHandle(
  handle: StreamHandle,
  bytes: Uint8Array,
  req: { buffer?: Uint8Array; oncomplete?: (status: number) => void },
): number {
  req.buffer = bytes;
  const err = handle.writeBuffer(req, bytes);
  if (err !== 0) return err < 0 ? err : -err;
  return binding!.streamBaseState[binding!.kLastWriteWasAsync] ? 1 : 0;
}
