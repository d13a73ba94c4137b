/**
 * A cursor over one packet's bytes with the MQTT data types (section 1.5).
 * Every read is bounds-checked against `end` and fails with MqttSyntaxError
 * naming the packet, so decoders never read past a packet.
 */
import { MqttSyntaxError } from "./errors.ts";
import { decodeUtf8 } from "./utf8.ts";

export class Reader {
  buf: Uint8Array = new Uint8Array(0);
  /** Offset of the packet's first byte, for error offsets. */
  start = 0;
  pos = 0;
  end = 0;
  /** Packet name used in error messages ("SUBSCRIBE"). */
  name = "";
  /** PUBLISH payloads as ranges of `buf` (RangePublish) rather than views. */
  ranges = false;

  fail(message: string, reasonCode = 0x81): never {
    throw new MqttSyntaxError(
      `Cannot decode ${this.name}: ${message}`,
      reasonCode,
      this.pos - this.start,
    );
  }

  need(n: number, what: string): void {
    if (this.pos + n > this.end) this.fail(`${what} is truncated`);
  }

  /** Leftover bytes after the last field are malformed. */
  done(): void {
    if (this.pos !== this.end) this.fail(`${this.end - this.pos} unexpected trailing byte(s)`);
  }

  u8(what: string): number {
    if (this.pos >= this.end) this.fail(`${what} is truncated`);
    return this.buf[this.pos++];
  }

  u16(what: string): number {
    this.need(2, what);
    const b = this.buf, p = this.pos;
    this.pos = p + 2;
    return (b[p] << 8) | b[p + 1];
  }

  u32(what: string): number {
    this.need(4, what);
    const b = this.buf, p = this.pos;
    this.pos = p + 4;
    return b[p] * 0x1000000 + ((b[p + 1] << 16) | (b[p + 2] << 8) | b[p + 3]);
  }

  /** Variable Byte Integer, at most 4 bytes (1.5.5). */
  vbi(what: string): number {
    let value = 0, mult = 1;
    for (let i = 0; i < 4; i++) {
      const b = this.u8(what);
      value += (b & 0x7f) * mult;
      if ((b & 0x80) === 0) return value;
      mult *= 128;
    }
    return this.fail(`${what} is longer than 4 bytes`);
  }

  /** Packet identifier, which must be non-zero [MQTT-2.3.1-1]. */
  packetId(): number {
    const id = this.u16("packet identifier");
    if (id === 0) this.fail("packet identifier is 0");
    return id;
  }

  /** UTF-8 Encoded String (1.5.4): well-formed, no U+0000. */
  utf8(what: string): string {
    const n = this.u16(what);
    this.need(n, what);
    const s = decodeUtf8(this.buf, this.pos, this.pos + n);
    if (s === undefined) this.fail(`${what} is not valid UTF-8`);
    this.pos += n;
    return s;
  }

  /** Binary Data (1.5.6): a view into the packet, not a copy. */
  binary(what: string): Uint8Array {
    const n = this.u16(what);
    this.need(n, what);
    const p = this.pos;
    this.pos = p + n;
    return this.buf.subarray(p, p + n);
  }
}
