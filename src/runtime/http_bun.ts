/** The operations HTTP endpoint on `Bun.serve`: the handler is runtime-free (src/http/). */
import type { HttpHandler, Listener, ListenOptions } from "./types.ts";

declare const Bun: {
  serve(opts: {
    hostname: string;
    port: number;
    fetch(req: Request): Response | Promise<Response>;
    error?(e: Error): Response;
  }): { port: number; stop(closeActive?: boolean): Promise<void> | void };
};

export function serveBunHttp(opts: ListenOptions, handler: HttpHandler): Promise<Listener> {
  // The Promise constructor turns a bind error (EADDRINUSE) into a rejection.
  return new Promise((resolve) => {
    const server = Bun.serve({
      hostname: opts.hostname,
      port: opts.port,
      fetch: handler,
      error: () => new Response("Internal error\n", { status: 500 }),
    });
    let closing: Promise<void> | undefined;
    resolve({
      port: server.port,
      close: () => closing ??= Promise.resolve(server.stop(true)),
    });
  });
}
