/**
 * A gateway program on Deno that embeds mqttx behind its own HTTP server:
 * `GET /` is the program's own route; `/mqtt` upgrades to a WebSocket that is
 * handed to the broker. Only user "device" with the password in
 * GATEWAY_SECRET (default "let-me-in") may connect; messages under
 * `devices/#` are printed by an in-process subscriber.
 *
 *   deno run -A examples/deno_gateway.ts          (PORT=0 picks a free port)
 */
import { createBroker, webSocketConn } from "../src/mod.ts";
import { denoRuntime } from "../src/runtime/deno.ts";

const SECRET = Deno.env.get("GATEWAY_SECRET") ?? "let-me-in";
const decoder = new TextDecoder();

const mqtt = await createBroker({
  runtime: denoRuntime,
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

const server = Deno.serve({
  hostname: "127.0.0.1",
  port: Number(Deno.env.get("PORT") ?? 8080),
  onListen: ({ port }) => console.log(`gateway listening on http://127.0.0.1:${port}`),
}, (req, info) => {
  const url = new URL(req.url);
  if (url.pathname === "/mqtt" && req.headers.get("upgrade")?.toLowerCase() === "websocket") {
    // The address first: after the upgrade the request is closed.
    const address = `${info.remoteAddr.hostname}:${info.remoteAddr.port}`;
    const { socket, response } = Deno.upgradeWebSocket(req, { protocol: "mqtt" });
    mqtt.attach(webSocketConn(socket, address));
    return response;
  }
  if (url.pathname === "/") return Response.json({ connected: mqtt.broker.connectedCount });
  return new Response("not found\n", { status: 404 });
});

Deno.addSignalListener("SIGTERM", async () => {
  await mqtt.close();
  await server.shutdown();
  Deno.exit(0);
});
