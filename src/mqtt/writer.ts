/**
 * Two sinks with one interface: Sizer counts the bytes a packet body needs,
 * Writer puts them into a buffer of exactly that size. Each packet body is
 * described once and run through both.
 */
import { utf8Length, writeUtf8 } from "./utf8.ts";

export interface Sink {
  u8(n: number): void;
  u16(n: number): void;
  u32(n: number): void;
  vbi(n: number): void;
  /** Length-prefixed UTF-8 string. */
  str(s: string): void;
  /** Length-prefixed binary data. */
  bin(b: Uint8Array): void;
  /** Bytes without a length prefix (payloads). */
  raw(b: Uint8Array): void;
}

export function vbiLength(n: number): number {
  return n < 128 ? 1 : n < 16384 ? 2 : n < 2097152 ? 3 : 4;
}

export class Sizer implements Sink {
  n = 0;
  u8(): void {
    this.n += 1;
  }
  u16(): void {
    this.n += 2;
  }
  u32(): void {
    this.n += 4;
  }
  vbi(n: number): void {
    this.n += vbiLength(n);
  }
  str(s: string): void {
    this.n += 2 + utf8Length(s);
  }
  bin(b: Uint8Array): void {
    this.n += 2 + b.length;
  }
  raw(b: Uint8Array): void {
    this.n += b.length;
  }
}

export class Writer implements Sink {
  buf: Uint8Array;
  pos: number;
  constructor(buf: Uint8Array = new Uint8Array(0), pos = 0) {
    this.buf = buf;
    this.pos = pos;
  }
  u8(n: number): void {
    this.buf[this.pos++] = n;
  }
  u16(n: number): void {
    const b = this.buf, p = this.pos;
    b[p] = n >> 8;
    b[p + 1] = n;
    this.pos = p + 2;
  }
  u32(n: number): void {
    const b = this.buf, p = this.pos;
    b[p] = n >>> 24;
    b[p + 1] = n >>> 16;
    b[p + 2] = n >>> 8;
    b[p + 3] = n;
    this.pos = p + 4;
  }
  vbi(n: number): void {
    do {
      let byte = n % 128;
      n = Math.floor(n / 128);
      if (n > 0) byte |= 0x80;
      this.buf[this.pos++] = byte;
    } while (n > 0);
  }
  str(s: string): void {
    const p = this.pos;
    const n = writeUtf8(this.buf, p + 2, s);
    this.buf[p] = n >> 8;
    this.buf[p + 1] = n;
    this.pos = p + 2 + n;
  }
  bin(b: Uint8Array): void {
    this.u16(b.length);
    this.buf.set(b, this.pos);
    this.pos += b.length;
  }
  raw(b: Uint8Array): void {
    this.buf.set(b, this.pos);
    this.pos += b.length;
  }
}
