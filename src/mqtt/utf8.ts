/**
 * UTF-8 helpers for MQTT strings (section 1.5.4). Short ASCII strings (topics,
 * client ids) take a hand-rolled path; anything else goes through one fatal
 * TextDecoder / TextEncoder.
 */

const decoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
const encoder = new TextEncoder();

/** Strings up to this many bytes are decoded by hand when they are ASCII. */
const SHORT = 64;

/**
 * Decode `buf[start, end)` as an MQTT UTF-8 string. Returns undefined when the
 * bytes are not well-formed UTF-8 (incl. encoded surrogates) or contain U+0000
 * [MQTT-1.5.4-1] [MQTT-1.5.4-2].
 */
export function decodeUtf8(buf: Uint8Array, start: number, end: number): string | undefined {
  const len = end - start;
  if (len === 0) return "";
  if (len <= SHORT) {
    let ascii = true;
    for (let i = start; i < end; i++) {
      const b = buf[i];
      if (b === 0) return undefined;
      if (b > 0x7f) {
        ascii = false;
        break;
      }
    }
    if (ascii) {
      return String.fromCharCode.apply(null, buf.subarray(start, end) as unknown as number[]);
    }
  }
  let s: string;
  try {
    s = decoder.decode(buf.subarray(start, end));
  } catch {
    return undefined;
  }
  return s.includes("\0") ? undefined : s;
}

/** Number of bytes `s` takes as UTF-8 (lone surrogates count as U+FFFD, like TextEncoder). */
export function utf8Length(s: string): number {
  const n = s.length;
  let len = n;
  for (let i = 0; i < n; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) continue;
    if (c < 0x800) len += 1;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < n) {
      const d = s.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) {
        len += 2; // 2 UTF-16 units -> 4 bytes
        i++;
      } else len += 2;
    } else len += 2;
  }
  return len;
}

/** Write `s` as UTF-8 at `buf[pos]`; returns the number of bytes written. */
export function writeUtf8(buf: Uint8Array, pos: number, s: string): number {
  const n = s.length;
  for (let i = 0; i < n; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0x80) {
      return i + encoder.encodeInto(s.slice(i), buf.subarray(pos + i)).written;
    }
    buf[pos + i] = c;
  }
  return n;
}

/** Encode a whole string (for callers that want bytes, e.g. tests). */
export function encodeUtf8(s: string): Uint8Array {
  return encoder.encode(s);
}
