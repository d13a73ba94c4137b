/** The operations HTTP endpoint on `Deno.serve`: the handler is runtime-free (src/http/). */
import type { HttpHandler, Listener, ListenOptions } from "./types.ts";

export function serveDenoHttp(opts: ListenOptions, handler: HttpHandler): Promise<Listener> {
  return new Promise((resolve, reject) => {
    let server: Deno.HttpServer<Deno.NetAddr>;
    try {
      server = Deno.serve({
        hostname: opts.hostname,
        port: opts.port,
        onListen: () => {},
        onError: () => new Response("Internal error\n", { status: 500 }),
      }, (req) => handler(req));
    } catch (e) {
      reject(e);
      return;
    }
    let closing: Promise<void> | undefined;
    resolve({
      port: server.addr.port,
      close: () => closing ??= server.shutdown(),
    });
  });
}
