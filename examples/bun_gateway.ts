/**
 * A gateway program on Bun that embeds mqttx behind its own HTTP server:
 * `GET /` is the program's own route; `/mqtt` upgrades to a WebSocket whose
 * messages are handed to the broker as a ReadableStream/WritableStream pair.
 * Only user "device" with the password in GATEWAY_SECRET (default
 * "let-me-in") may connect; messages under `devices/#` are printed by an
 * in-process subscriber.
 *
 *   bun examples/bun_gateway.ts          (PORT=0 picks a free port)
 */
import process from "node:process";
import { createBroker } from "../src/mod.ts";
import { bunRuntime } from "../src/runtime/bun.ts";

const SECRET = process.env.GATEWAY_SECRET ?? "let-me-in";
const decoder = new TextDecoder();

const mqtt = await createBroker({
  runtime: bunRuntime,
  config: { socket: { enable: false } }, // no listener of its own: connections come from us
  hooks: [{
    authenticate(_client, connect) {
      const password = connect.password ? decoder.decode(connect.password) : "";
      if (connect.username === "device" && password === SECRET) return { ok: true };
      return { ok: false, reasonCode: 0x86 }; // Bad user name or password
    },
  }],
});

mqtt.subscribe("devices/#", (m) => {
  console.log(`[gateway] ${m.topic}: ${decoder.decode(m.payload)}`);
});

interface Socket {
  data: { addr: string; input?: ReadableStreamDefaultController<Uint8Array> };
  send(bytes: Uint8Array): number;
  close(): void;
}

// @ts-ignore: Bun's global (this file runs on Bun only)
const server = Bun.serve({
  hostname: "127.0.0.1",
  port: Number(process.env.PORT ?? 8080),
  fetch(req: Request, srv: {
    upgrade(r: Request, o: object): boolean;
    requestIP(r: Request): { address: string; port: number } | null;
  }) {
    const url = new URL(req.url);
    if (url.pathname === "/mqtt") {
      const ip = srv.requestIP(req);
      const data = { addr: ip ? `${ip.address}:${ip.port}` : "unknown" };
      const headers = { "sec-websocket-protocol": "mqtt" };
      if (srv.upgrade(req, { headers, data })) return undefined;
      return new Response("expected a WebSocket upgrade\n", { status: 400 });
    }
    if (url.pathname === "/") return Response.json({ connected: mqtt.broker.connectedCount });
    return new Response("not found\n", { status: 404 });
  },
  websocket: {
    open(ws: Socket) {
      const readable = new ReadableStream<Uint8Array>({
        start: (c) => void (ws.data.input = c),
      });
      const writable = new WritableStream<Uint8Array>({
        write: (chunk) => void ws.send(chunk.slice()), // the broker reuses its buffer
        close: () => ws.close(),
      });
      mqtt.attachStreams(readable, writable, ws.data.addr);
    },
    message(ws: Socket, msg: string | Uint8Array) {
      ws.data.input?.enqueue(typeof msg === "string" ? new TextEncoder().encode(msg) : msg);
    },
    close(ws: Socket) {
      try {
        ws.data.input?.close();
      } catch { /* already closed */ }
    },
  },
});
console.log(`gateway listening on http://127.0.0.1:${server.port}`);

process.on("SIGTERM", async () => {
  await mqtt.close();
  server.stop(true);
  process.exit(0);
});
