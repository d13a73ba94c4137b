import type { Conn, ConnCallbacks, StreamConn } from "./conn.ts";

/** True when `c` offers the callback path (the core's `Conn`). */
export function isCallbackConn(c: Conn | Partial<Conn>): c is Conn {
  return typeof c.start === "function" && typeof c.write === "function";
}

/**
 * The one adapter from a Web-stream pair to the core's `Conn`: reads are
 * pumped into `data` (waiting while it returns a promise), writes go to the
 * stream's writer (which settles once the sink took the bytes).
 */
export function connFromStreams(s: StreamConn): Conn {
  let writer: WritableStreamDefaultWriter<Uint8Array> | undefined;
  return {
    remoteAddr: s.remoteAddr,
    peerCertificate: s.peerCertificate,
    close: () => s.close(),
    endWrite: s.endWrite ? () => s.endWrite!() : undefined,
    start: (callbacks) => void pump(s, callbacks),
    write: (bytes, length = bytes.length) => {
      writer ??= s.writable.getWriter();
      return writer.write(length === bytes.length ? bytes : bytes.subarray(0, length));
    },
  };
}

async function pump(s: StreamConn, callbacks: ConnCallbacks): Promise<void> {
  const reader = s.readable.getReader();
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      const pending = callbacks.data(value);
      if (pending) await pending;
    }
  } catch {
    // A failed read ends the connection like EOF does (as the socket adapters do).
  } finally {
    reader.releaseLock?.();
    callbacks.end(s.closeReason); // the transport's refusal, if it made one
  }
}
