/**
 * MQTT over WebSocket on top of any Conn (RFC 6455, server side): reads the
 * HTTP upgrade request, answers it, then turns binary frames into a Conn of
 * MQTT bytes. Used for wss:// listeners, whose TLS Conn comes from the same
 * runtime TLS listener as mqtts:// (so client certificates and certificate
 * reload work for WebSocket too; the runtimes' HTTP servers cannot request or
 * expose client certificates), and for ws:// over a TCP listener on both
 * runtimes (transport/listeners.ts says why not theirs). Runtime-free.
 *
 * Frames are read only as fast as the MQTT side takes them, so a client the
 * broker holds back is held back by TCP: nothing piles up here. A protocol
 * error ends the MQTT side's reads with an error naming it (the broker logs
 * it) and the close frame carries the code.
 *
 * MQTT is a byte stream, so frame boundaries do not matter: each binary or
 * continuation frame's payload is passed on as it arrives, unmasked in place
 * (a packet split over frames, or several packets in one frame, both work).
 * Text frames are refused [MQTT-6.0.0-1].
 */
import type { PeerCertificate, TransportConn } from "../runtime/types.ts";
import { decideUpgrade, requestPath } from "./websocket_protocol.ts";
import { escapeForLog } from "../log/escape.ts";
import { ConnIo } from "./conn_io.ts";
import { answerAndEnd as answer, concat, deadline, readHead } from "./http_head.ts";

export interface WebSocketOverConnOptions {
  /** URL path clients must ask for, e.g. "/mqtt"; other paths get 404. */
  path: string;
  /** ms the client has to send its upgrade request (default 10 s). */
  handshakeTimeout?: number;
  /** Told why a connection was closed before its upgrade. */
  log?: (line: string) => void;
}

const GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
const enc = new TextEncoder();

/** Serve one connection: on a good upgrade, `onConn` gets the MQTT byte Conn. Never throws. */
export function serveWebSocketOverConn(
  conn: TransportConn,
  opts: WebSocketOverConnOptions,
  onConn: (conn: TransportConn) => void,
): void {
  handshake(conn, opts).then((ws) => ws && onConn(ws)).catch((e) => {
    refused(conn, opts, `WebSocket upgrade failed (${e instanceof Error ? e.message : e})`);
  });
}

async function handshake(
  conn: TransportConn,
  opts: WebSocketOverConnOptions,
): Promise<TransportConn | undefined> {
  const io = new ConnIo(conn);
  const head = await deadline(readHead(io), opts.handshakeTimeout ?? 10_000);
  if (typeof head !== "object") {
    refused(conn, opts, "no WebSocket upgrade request in time (or a bad one)");
    return;
  }
  const { method, target, headers, rest } = head;
  const get = (name: string) => headers.get(name) ?? null;
  const decision = decideUpgrade(
    { method, path: requestPath(target), headers: { get } },
    opts.path,
  );
  const key = get("sec-websocket-key");
  if (decision.upgrade && (!key || get("sec-websocket-version") !== "13")) {
    await answer(io, 400, "Bad WebSocket upgrade: needs Sec-WebSocket-Key and version 13\n", [
      "Sec-WebSocket-Version: 13",
    ]);
    refused(conn, opts, "HTTP 400: upgrade without Sec-WebSocket-Key or version 13");
    return;
  }
  if (!decision.upgrade) {
    await answer(io, decision.status, decision.body);
    refused(conn, opts, `HTTP ${decision.status}: ${decision.body.trim()}`);
    return;
  }
  const digest = await crypto.subtle.digest("SHA-1", enc.encode(key!.trim() + GUID));
  const accept = btoa(String.fromCharCode(...new Uint8Array(digest)));
  const lines = [
    "HTTP/1.1 101 Switching Protocols",
    "Upgrade: websocket",
    "Connection: Upgrade",
    `Sec-WebSocket-Accept: ${accept}`,
    ...(decision.protocol ? [`Sec-WebSocket-Protocol: ${decision.protocol}`] : []),
  ];
  await io.write(enc.encode(lines.join("\r\n") + "\r\n\r\n"));
  return new FrameConn(conn, io, rest);
}

function refused(conn: TransportConn, opts: WebSocketOverConnOptions, why: string): void {
  opts.log?.(`closing ${conn.remoteAddr}: ${escapeForLog(why)}`);
  conn.close();
}

const NO_BYTES = new Uint8Array(0);

/** Close codes (RFC 6455 7.4.1). */
const PROTOCOL_ERROR = 1002;
const UNSUPPORTED_DATA = 1003;
const MESSAGE_TOO_BIG = 1009;

/** A TransportConn of MQTT bytes carried in WebSocket frames over another Conn. */
class FrameConn implements TransportConn {
  readonly readable: ReadableStream<Uint8Array>;
  readonly writable: WritableStream<Uint8Array>;
  readonly remoteAddr: string;
  readonly peerCertificate: PeerCertificate | undefined;
  /** No more writes (we or the peer closed). */
  private closed = false;
  private closing = false;
  /** Header bytes of the frame being read (at most 14). */
  private header = NO_BYTES;
  /** Payload bytes still to come in the current frame, its mask, and where in the mask we are. */
  private remaining = 0;
  private mask = new Uint8Array(4);
  private maskAt = 0;
  private opcode = 0;
  /** Payload of a control frame being collected. */
  private control: Uint8Array[] = [];
  /** Inside a fragmented binary message (continuation frames expected). */
  private inMessage = false;
  private inFrame = false;
  /** Why the last frame was refused (the close code says how). */
  private failure = "";
  /** StreamConn.closeReason: the refusal the broker logs. */
  closeReason: string | undefined;

  constructor(
    private readonly inner: TransportConn,
    private readonly io: ConnIo,
    rest: Uint8Array,
  ) {
    this.remoteAddr = inner.remoteAddr;
    this.peerCertificate = inner.peerCertificate;
    let first: Uint8Array | undefined = rest.byteLength ? rest : undefined;
    this.readable = new ReadableStream<Uint8Array>({
      pull: async (controller) => {
        for (;;) {
          let chunk = first;
          first = undefined;
          if (!chunk) {
            chunk = await this.io.read();
            if (!chunk) {
              this.closed = true;
              controller.close();
              return;
            }
          }
          const out: Uint8Array[] = [];
          const end = this.feed(chunk, out);
          for (const o of out) controller.enqueue(o);
          if (end !== undefined) {
            this.shutdown(end);
            if (this.failure) {
              this.closeReason = `WebSocket ${this.failure} (closed ${end})`;
              controller.error(new Error(this.closeReason));
            } else controller.close(); // the peer's close frame
            return;
          }
          if (out.length) return;
        }
      },
      cancel: () => this.close(),
    });
    this.writable = new WritableStream<Uint8Array>({
      write: (chunk) => {
        if (this.closed) return Promise.reject(new Error("Cannot write: connection closed"));
        return this.io.write(frame(0x2, chunk));
      },
      close: () => this.close(),
      abort: () => this.close(),
    });
  }

  close(): void {
    this.shutdown(1000);
  }

  /** Send a close frame with `code` (null: empty), flush, and close the transport. Once. */
  private shutdown(code: number | null): void {
    if (this.closing) return;
    this.closing = true;
    this.closed = true;
    const payload = code === null ? new Uint8Array(0) : Uint8Array.of(code >> 8, code & 0xff);
    this.io.write(frame(0x8, payload)).catch(() => {});
    let timer: ReturnType<typeof setTimeout> | undefined;
    const flushed = this.io.flush();
    const limit = new Promise<void>((r) => (timer = setTimeout(r, 2000)));
    Promise.race([flushed, limit]).finally(() => {
      clearTimeout(timer);
      this.inner.close();
    });
  }

  /**
   * Decode frames from `chunk`, pushing MQTT bytes to `out`. Returns a close
   * code (or null: close without a code) when the connection must end.
   *
   * The payloads of every data frame in the chunk are unmasked into one buffer,
   * pushed as one piece: a client sends one frame per MQTT packet (MQTT.js
   * does), and a piece, a header copy and a stream chunk per frame were most
   * of this server's cost (bench/notes/ws.md).
   */
  private feed(chunk: Uint8Array, out: Uint8Array[]): number | null | undefined {
    let at = 0;
    const length = chunk.length;
    /** This chunk's MQTT bytes, unmasked (made at the first data payload byte). */
    let data: Uint8Array | undefined;
    let used = 0;
    const done = (end: number | null | undefined) => {
      if (used > 0) out.push(data!.subarray(0, used));
      return end;
    };
    while (at < length) {
      if (!this.inFrame) {
        let h: Uint8Array;
        if (
          this.header.length === 0 && length - at >= 2 && length - at >= headerSize(chunk[at + 1])
        ) {
          h = chunk.subarray(at, at + headerSize(chunk[at + 1])); // the usual case: all here
          at += h.length;
        } else {
          // A header split over reads: collect 2 bytes, then the extended length and mask key.
          const need = this.header.length < 2 ? 2 : headerSize(this.header[1]);
          const take = Math.min(need - this.header.length, length - at);
          this.header = concat(this.header, chunk.subarray(at, at + take));
          at += take;
          if (this.header.length < 2 || this.header.length < headerSize(this.header[1])) continue;
          h = this.header;
        }
        const end = this.startFrame(h);
        if (end !== undefined) return done(end);
        if (this.remaining === 0) {
          const end = this.endFrame();
          if (end !== undefined) return done(end);
        }
        continue;
      }
      const n = Math.min(this.remaining, length - at);
      const mask = this.mask;
      const from = this.maskAt;
      if (this.opcode >= 0x8) {
        const piece = chunk.slice(at, at + n);
        for (let i = 0; i < n; i++) piece[i] ^= mask[(from + i) & 3];
        this.control.push(piece);
      } else {
        data ??= new Uint8Array(length - at);
        for (let i = 0; i < n; i++) data[used + i] = chunk[at + i] ^ mask[(from + i) & 3];
        used += n;
      }
      this.maskAt = (from + n) & 3;
      this.remaining -= n;
      at += n;
      if (this.remaining === 0) {
        const end = this.endFrame();
        if (end !== undefined) return done(end);
      }
    }
    return done(undefined);
  }

  /** A full header `h`: check it and set up the payload. */
  private startFrame(h: Uint8Array): number | undefined {
    const fin = (h[0] & 0x80) !== 0;
    const opcode = h[0] & 0x0f;
    if ((h[0] & 0x70) !== 0) return this.refuse(PROTOCOL_ERROR, "frame with RSV bits set");
    if ((h[1] & 0x80) === 0) return this.refuse(PROTOCOL_ERROR, "unmasked client frame"); // 5.1
    let len = h[1] & 0x7f;
    let at = 2;
    if (len === 126) {
      len = (h[2] << 8) | h[3];
      at = 4;
    } else if (len === 127) {
      if (h[2] | h[3] | h[4] | h[5]) return this.refuse(MESSAGE_TOO_BIG, "frame of 4 GiB or more");
      len = ((h[6] << 24) >>> 0) + (h[7] << 16) + (h[8] << 8) + h[9];
      at = 10;
    }
    this.mask.set(h.subarray(at, at + 4));
    this.maskAt = 0;
    this.remaining = len;
    this.inFrame = true;
    this.opcode = opcode;
    if (opcode >= 0x8) {
      // Control frames are short and whole.
      if (!fin || len > 125) return this.refuse(PROTOCOL_ERROR, "fragmented or long control frame");
      if (opcode > 0xa) return this.refuse(PROTOCOL_ERROR, `unknown opcode ${opcode}`);
      this.control = [];
      return undefined;
    }
    // [MQTT-6.0.0-1]
    if (opcode === 0x1) return this.refuse(UNSUPPORTED_DATA, "text frame (MQTT needs binary)");
    if (opcode === 0x0 && !this.inMessage) {
      return this.refuse(PROTOCOL_ERROR, "continuation frame outside a message");
    }
    if (opcode === 0x2 && this.inMessage) {
      return this.refuse(PROTOCOL_ERROR, "new message inside a fragmented one");
    }
    if (opcode !== 0x0 && opcode !== 0x2) return this.refuse(PROTOCOL_ERROR, `opcode ${opcode}`);
    this.inMessage = !fin;
    return undefined;
  }

  /** A pong is on its way; a ping that came meanwhile (only the latest is answered, 5.5.3). */
  private ponging = false;
  private nextPing: Uint8Array | undefined;

  /** Answer a ping: one pong in flight at most, so a ping flood queues nothing here. */
  private pong(payload: Uint8Array): void {
    if (this.ponging) {
      this.nextPing = payload;
      return;
    }
    this.ponging = true;
    this.io.write(frame(0xa, payload)).catch(() => {}).finally(() => {
      this.ponging = false;
      const next = this.nextPing;
      this.nextPing = undefined;
      if (next && !this.closed) this.pong(next);
    });
  }

  private refuse(code: number, why: string): number {
    this.failure = why;
    return code;
  }

  /** The current frame's payload is complete. */
  private endFrame(): number | null | undefined {
    if (this.header.length > 0) this.header = NO_BYTES;
    this.inFrame = false;
    const op = this.opcode;
    if (op < 0x8) return undefined;
    const payload = this.control.reduce(concat, new Uint8Array(0));
    this.control = [];
    if (op === 0x9) this.pong(payload);
    if (op === 0x8) return payload.length >= 2 ? (payload[0] << 8) | payload[1] : null;
    return undefined;
  }
}

/** Size of a client frame header from its second byte: 2, +2/+8 for the length, +4 for the mask. */
function headerSize(b1: number): number {
  const len = b1 & 0x7f;
  return 2 + (len === 126 ? 2 : len === 127 ? 8 : 0) + ((b1 & 0x80) ? 4 : 0);
}

/** One unmasked server frame with FIN set. */
function frame(opcode: number, payload: Uint8Array): Uint8Array {
  const n = payload.byteLength;
  const size = n < 126 ? 2 : n < 65536 ? 4 : 10;
  const out = new Uint8Array(size + n);
  out[0] = 0x80 | opcode;
  if (n < 126) out[1] = n;
  else if (n < 65536) {
    out[1] = 126;
    out[2] = n >> 8;
    out[3] = n & 0xff;
  } else {
    out[1] = 127; // bytes 2..5 stay 0: one write is far below 4 GiB
    out[6] = (n >>> 24) & 0xff;
    out[7] = (n >> 16) & 0xff;
    out[8] = (n >> 8) & 0xff;
    out[9] = n & 0xff;
  }
  out.set(payload, size);
  return out;
}
