/**
 * Web streams over a Conn's callback path (`start` + `write`), for callers that ask for
 * `readable`/`writable` (tests, embedders): made only when asked for, so a connection the
 * broker drives through callbacks holds none. Shared by Deno's Conns (node_socket_conn.ts,
 * tcp_handle_conn.ts).
 */
import type { ConnCallbacks } from "./types.ts";

const READ_HIGH_WATER = 64 * 1024;

interface CallbackConn {
  start(callbacks: ConnCallbacks): void;
  write(bytes: Uint8Array): void | Promise<void>;
  close(): void;
}

/** Input as a stream; reading stops (backpressure) while the stream's queue is full. */
export function readableOf(conn: CallbackConn): ReadableStream<Uint8Array> {
  let wake: (() => void) | undefined;
  return new ReadableStream<Uint8Array>({
    start: (controller) => {
      conn.start({
        data(chunk) {
          controller.enqueue(chunk);
          if ((controller.desiredSize ?? 1) > 0) return;
          return new Promise<void>((resolve) => wake = resolve);
        },
        end() {
          try {
            controller.close();
          } catch { /* the reader cancelled */ }
          wake?.();
        },
      });
    },
    pull: () => {
      const w = wake;
      wake = undefined;
      w?.();
    },
    cancel: () => conn.close(),
  }, { highWaterMark: READ_HIGH_WATER, size: (chunk) => chunk.byteLength });
}

/** Output as a stream; `end` sends what is queued, then ends our side. */
export function writableOf(conn: CallbackConn, end: () => Promise<void>): WritableStream {
  return new WritableStream<Uint8Array>({
    write: (chunk) => conn.write(chunk),
    close: end,
    abort: () => conn.close(),
  });
}
