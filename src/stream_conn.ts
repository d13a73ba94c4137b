/**
 * A Conn over any ReadableStream/WritableStream pair of MQTT bytes (a
 * WebSocket upgraded on the embedding program's own HTTP route, a pipe, an
 * in-memory pair). close() ends both directions even while a read is pending.
 */
import type { StreamConn } from "./broker/conn.ts";

export function streamConn(
  source: ReadableStream<Uint8Array>,
  sink: WritableStream<Uint8Array>,
  remoteAddr = "stream",
): StreamConn {
  const reader = source.getReader();
  let closed = false;
  let control: ReadableStreamDefaultController<Uint8Array> | undefined;
  const readable = new ReadableStream<Uint8Array>({
    start(c) {
      control = c;
    },
    async pull(c) {
      try {
        const { value, done } = await reader.read();
        if (closed) return;
        if (done) {
          closed = true;
          c.close();
        } else c.enqueue(value);
      } catch (e) {
        if (!closed) c.error(e);
      }
    },
    cancel: () => close(),
  });
  const writer = sink.getWriter();
  const writable = new WritableStream<Uint8Array>({
    write: (chunk) => writer.write(chunk),
    close: () => close(),
    abort: () => close(),
  });
  const close = () => {
    if (closed) return;
    closed = true;
    try {
      control?.close(); // a pending read resolves as done
    } catch { /* already closed */ }
    reader.cancel().catch(() => {});
    writer.close().catch(() => {});
  };
  return { readable, writable, remoteAddr, close };
}
