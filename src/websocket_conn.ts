/**
 * A Web-standard `WebSocket` (what a runtime's WebSocket upgrade hands out) as a
 * Conn: each binary message's bytes are a readable chunk (frame boundaries do
 * not matter to MQTT), each write is one binary message. A text message
 * closes the connection (1003) [MQTT-6.0.0-1].
 *
 * The WebSocket API cannot pause reading, so input the broker has not taken
 * yet is bounded instead: past MAX_UNREAD_INPUT the connection is closed
 * (1008), so a peer held back never costs unbounded memory. Writes wait while
 * more than WRITE_HIGH_WATER bytes are buffered.
 */
import type { TransportConn } from "./runtime/types.ts";

const WRITE_HIGH_WATER = 1024 * 1024;
/** Unread input past which the connection is closed. */
export const MAX_UNREAD_INPUT = 4 * 1024 * 1024;

export function webSocketConn(ws: WebSocket, remoteAddr: string): TransportConn {
  ws.binaryType = "arraybuffer";
  let ended = false;
  const closedError = () => new Error("Cannot write: connection closed");
  const readable = new ReadableStream<Uint8Array>({
    start(controller) {
      const end = () => {
        if (ended) return;
        ended = true;
        try {
          controller.close();
        } catch { /* the reader already cancelled */ }
      };
      ws.addEventListener("message", (ev: MessageEvent) => {
        if (ended) return;
        if (typeof ev.data === "string") {
          ws.close(1003, "MQTT needs binary frames");
          end();
          return;
        }
        controller.enqueue(new Uint8Array(ev.data as ArrayBuffer));
        // desiredSize is minus the unread bytes (high-water mark 0, counted in bytes).
        if ((controller.desiredSize ?? 0) < -MAX_UNREAD_INPUT) {
          ws.close(1008, "unread input over limit");
          end();
        }
      });
      ws.addEventListener("close", end);
      ws.addEventListener("error", end);
    },
    cancel() {
      close();
    },
  }, new ByteLengthQueuingStrategy({ highWaterMark: 0 }));
  const writable = new WritableStream<Uint8Array>({
    async write(chunk) {
      if (ended || ws.readyState > WebSocket.OPEN) throw closedError();
      if (ws.readyState === WebSocket.CONNECTING) await opened(ws);
      ws.send(chunk);
      // Bounded wait: at most ~10 s of a peer that does not read before writes go on.
      for (let i = 0; i < 1000 && ws.bufferedAmount > WRITE_HIGH_WATER && !ended; i++) {
        await new Promise((r) => setTimeout(r, 10));
      }
    },
    close() {
      close();
    },
    abort() {
      close();
    },
  });
  function close() {
    if (ws.readyState === WebSocket.CLOSING || ws.readyState === WebSocket.CLOSED) return;
    try {
      ws.close(1000);
    } catch { /* already closing */ }
  }
  return { readable, writable, remoteAddr, close };
}

function opened(ws: WebSocket): Promise<void> {
  return new Promise((resolve, reject) => {
    ws.addEventListener("open", () => resolve(), { once: true });
    ws.addEventListener("close", () => reject(new Error("Cannot write: connection closed")), {
      once: true,
    });
  });
}
