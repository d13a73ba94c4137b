/** The operations HTTP endpoint on `Deno.serve`: the handler is runtime-free (src/http/). */
import type { HttpHandler, Listener, ListenOptions } from "./types.ts";

/** After Deno's HTTP server stopped accepting (out of file descriptors), this long to serve again. */
const RESTART_MS = 1000;

export function serveDenoHttp(opts: ListenOptions, handler: HttpHandler): Promise<Listener> {
  return new Promise((resolve, reject) => {
    const serve = (port: number) =>
      Deno.serve({
        hostname: opts.hostname,
        port,
        onListen: () => {},
        onError: () => new Response("Internal error\n", { status: 500 }),
      }, (req) => handler(req));
    let server: Deno.HttpServer<Deno.NetAddr>;
    try {
      server = serve(opts.port);
    } catch (e) {
      reject(e);
      return;
    }
    const port = server.addr.port;
    let closing: Promise<void> | undefined;
    let retry: ReturnType<typeof setTimeout> | undefined;
    // Deno's accept loop ends at an accept error (EMFILE) and rejects `finished`: unhandled, that
    // rejection ended the whole process. The endpoint is logged and served again instead.
    const watch = (s: Deno.HttpServer<Deno.NetAddr>) =>
      s.finished.catch((e) => {
        if (closing) return;
        opts.log?.(`http: the endpoint stopped accepting (${e}); serving it again in 1 s`);
        let failures = 0;
        const again = () => {
          if (closing) return;
          try {
            watch(server = serve(port));
            if (failures > 0) opts.log?.("http: the endpoint is served again");
          } catch (e2) {
            if (failures++ === 0) opts.log?.(`http: cannot serve the endpoint again yet (${e2})`);
            retry = setTimeout(again, RESTART_MS);
          }
        };
        retry = setTimeout(again, RESTART_MS);
      });
    watch(server);
    resolve({
      port,
      close: () => {
        clearTimeout(retry);
        return closing ??= server.shutdown();
      },
    });
  });
}
