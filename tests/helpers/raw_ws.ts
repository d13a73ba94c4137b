/**
 * A raw WebSocket client over node:net / node:tls, for what MQTT.js does not
 * do: packets split over frames, text frames, unmasked frames, a peer that
 * ignores the close handshake.
 */
import assert from "node:assert/strict";
import * as net from "node:net";
import * as tls from "node:tls";
import { Buffer } from "node:buffer";
import { waitUntil, withTimeout } from "./mqttjs.ts";

export interface Frame {
  fin: boolean;
  opcode: number;
  payload: Uint8Array;
}

export class RawWs {
  private buf = new Uint8Array(0);
  private waiters = new Set<() => void>();
  closed = false;
  status = 0;
  head = "";
  private upgraded = false;
  readonly frames: Frame[] = [];

  private constructor(readonly socket: net.Socket) {
    socket.on("data", (d: Uint8Array) => {
      this.buf = Buffer.concat([this.buf, d]);
      this.parse();
      for (const w of [...this.waiters]) w();
    });
    socket.on("error", () => {});
    socket.on("close", () => {
      this.closed = true;
      for (const w of [...this.waiters]) w();
    });
  }

  /** Connects (over TLS trusting `ca` when given), upgrades, and adds itself to `registry`. */
  static async open(
    port: number,
    request: { path?: string; protocol?: string | null; upgrade?: boolean; ca?: string } = {},
    registry?: RawWs[],
  ): Promise<RawWs> {
    const ca = request.ca;
    const socket = await withTimeout(
      new Promise<net.Socket>((resolve, reject) => {
        const s: net.Socket = ca !== undefined
          ? tls.connect({ host: "127.0.0.1", port, ca }, () => resolve(s))
          : net.connect({ host: "127.0.0.1", port }, () => resolve(s));
        s.once("error", reject);
      }),
      "connect",
    );
    const ws = new RawWs(socket);
    registry?.push(ws);
    const lines = [`GET ${request.path ?? "/mqtt"} HTTP/1.1`, `Host: 127.0.0.1:${port}`];
    if (request.upgrade !== false) {
      lines.push(
        "Upgrade: websocket",
        "Connection: Upgrade",
        `Sec-WebSocket-Key: ${
          Buffer.from(crypto.getRandomValues(new Uint8Array(16))).toString("base64")
        }`,
        "Sec-WebSocket-Version: 13",
      );
      const protocol = request.protocol === undefined ? "mqtt" : request.protocol;
      if (protocol !== null) lines.push(`Sec-WebSocket-Protocol: ${protocol}`);
    }
    socket.write(lines.join("\r\n") + "\r\n\r\n");
    await ws.until(() => ws.status !== 0, "HTTP response head");
    return ws;
  }

  /** Response header value (lower-case name). */
  header(name: string): string | undefined {
    const line = this.head.split("\r\n").find((l) => l.toLowerCase().startsWith(`${name}:`));
    return line?.slice(name.length + 1).trim();
  }

  /** Body of a non-101 answer, once the server closed. */
  async body(): Promise<string> {
    await this.until(() => this.closed, "server to close after answering");
    return new TextDecoder().decode(this.buf);
  }

  private parse(): void {
    if (!this.upgraded) {
      const end = Buffer.from(this.buf).indexOf("\r\n\r\n");
      if (end < 0) return;
      this.head = new TextDecoder().decode(this.buf.subarray(0, end));
      this.status = Number(this.head.split(" ")[1]);
      if (this.status !== 101) return; // keep the body in buf
      this.upgraded = true;
      this.buf = this.buf.slice(end + 4);
    }
    for (;;) {
      if (this.buf.length < 2) return;
      let len = this.buf[1] & 0x7f;
      let at = 2;
      if (len === 126) {
        if (this.buf.length < 4) return;
        len = (this.buf[2] << 8) | this.buf[3];
        at = 4;
      } else if (len === 127) {
        if (this.buf.length < 10) return;
        len = Number(new DataView(this.buf.buffer, this.buf.byteOffset).getBigUint64(2));
        at = 10;
      }
      if (this.buf.length < at + len) return;
      this.frames.push({
        fin: (this.buf[0] & 0x80) !== 0,
        opcode: this.buf[0] & 0x0f,
        payload: this.buf.slice(at, at + len),
      });
      this.buf = this.buf.slice(at + len);
    }
  }

  /** Send one masked frame. */
  send(opcode: number, payload: Uint8Array, fin = true): void {
    this.socket.write(encodeFrame(opcode, payload, fin));
  }

  write(bytes: Uint8Array): void {
    this.socket.write(bytes);
  }

  /** Concatenated payload of the binary/continuation frames received. */
  mqttBytes(): Uint8Array {
    return Buffer.concat(
      this.frames.filter((f) => f.opcode === 0 || f.opcode === 2).map((f) => f.payload),
    );
  }

  until(pred: () => boolean, what: string, ms = 5000): Promise<void> {
    return waitUntil(this.waiters, pred, what, ms);
  }

  /** Waits until the MQTT bytes received start with these packet types (high nibbles). */
  async packets(types: number[]): Promise<number[]> {
    const seen = () => packetTypes(this.mqttBytes());
    await this.until(
      () => types.every((t, i) => seen()[i] === t) || this.closed,
      `packets ${types.join(",")} (got ${seen().join(",")})`,
    );
    assert.deepEqual(seen().slice(0, types.length), types);
    return seen();
  }

  destroy(): void {
    this.socket.destroy();
  }
}

/**
 * One client frame. `masked: false` breaks RFC 6455 on purpose; `length`
 * declares a longer payload than `payload` (the rest may follow, or never).
 */
export function encodeFrame(
  opcode: number,
  payload: Uint8Array,
  fin: boolean,
  opts: { masked?: boolean; length?: number } = {},
): Uint8Array {
  const masked = opts.masked ?? true;
  const n = opts.length ?? payload.length;
  const m = masked ? 0x80 : 0;
  const head = n < 126
    ? [n | m]
    : n < 65536
    ? [126 | m, n >> 8, n & 0xff]
    : [127 | m, 0, 0, 0, 0, (n >>> 24) & 0xff, (n >> 16) & 0xff, (n >> 8) & 0xff, n & 0xff];
  const mask = masked ? crypto.getRandomValues(new Uint8Array(4)) : new Uint8Array(0);
  const at = 1 + head.length + mask.length;
  const out = new Uint8Array(at + payload.length);
  out[0] = (fin ? 0x80 : 0) | opcode;
  out.set(head, 1);
  out.set(mask, 1 + head.length);
  for (let i = 0; i < payload.length; i++) {
    out[at + i] = masked ? payload[i] ^ mask[i & 3] : payload[i];
  }
  return out;
}

/** Packet types (1 = CONNECT, 2 = CONNACK, 3 = PUBLISH, 9 = SUBACK...) in a byte stream. */
export function packetTypes(b: Uint8Array): number[] {
  const out: number[] = [];
  let at = 0;
  while (at < b.length) {
    let len = 0;
    let mul = 1;
    let i = at + 1;
    for (; i < b.length; i++) {
      len += (b[i] & 0x7f) * mul;
      mul *= 128;
      if ((b[i] & 0x80) === 0) break;
    }
    if (i >= b.length || i + 1 + len > b.length) break;
    out.push(b[at] >> 4);
    at = i + 1 + len;
  }
  return out;
}
