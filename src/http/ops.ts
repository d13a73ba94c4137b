/**
 * The operations endpoint (`http.enable`): routes requests to /health,
 * /ready, /metrics, the admin API and the dashboard. Runtime-free: our HTTP/1.1 server
 * (transport/http_server.ts) on the runtime's TCP listener carries the requests.
 *
 *   GET /health    200 when every health source is ok, else 503 naming the failing ones
 *   GET /ready     200 once started, 503 while starting or stopping
 *   GET /metrics   Prometheus text format
 *   /api/v1/...    admin API (api.ts), Bearer http.token when one is set
 *   GET /          the dashboard (dashboard.ts)
 */
import type { Broker } from "../broker/broker.ts";
import type { Logger } from "../log/logger.ts";
import type { HttpHandler, Listener, Runtime } from "../runtime/types.ts";
import type { BoundListener } from "../transport/listeners.ts";
import { serveHttp } from "../transport/http_server.ts";
import { bearerMatches, browserProblem, httpTokenProblem } from "./access.ts";
import { apiHandler, json } from "./api.ts";
import { DASHBOARD_HTML } from "./dashboard.ts";
import type { HealthRegistry } from "./health.ts";
import { LoopDelayMonitor } from "./loop_delay.ts";
import { brokerCollector, type MetricsRegistry } from "./metrics.ts";
import { PROM_CONTENT_TYPE, PromText } from "./prom_text.ts";

export type AppState = "starting" | "ready" | "stopping";

export interface OpsOptions {
  http: { host: string; port: number; token?: string; enable: boolean };
  /** Undefined while it starts (the store opening): the admin API answers 503. */
  broker: () => Broker | undefined;
  health: HealthRegistry;
  metrics: MetricsRegistry;
  logger: Logger;
  state: () => AppState;
  listeners: () => readonly BoundListener[];
  version: string;
  runtimeName: string;
}

export interface OpsEndpoint {
  readonly port: number;
  close(): Promise<void>;
}

/** Start the endpoint; throws (naming http.token) on a non-loopback host without a token. */
export async function startOps(runtime: Runtime, o: OpsOptions): Promise<OpsEndpoint> {
  const problem = httpTokenProblem(o.http);
  if (problem) throw new Error(problem);
  const loopDelay = new LoopDelayMonitor();
  const removeCollector = o.metrics.register(brokerCollector({
    broker: o.broker,
    listeners: o.listeners,
    loopDelay,
    version: o.version,
    runtime: o.runtimeName,
    startedAt: Date.now(),
  }));
  let listener: Listener;
  try {
    listener = await serveHttp(
      runtime.listen.bind(runtime),
      {
        hostname: o.http.host,
        port: o.http.port,
        log: (msg) => o.logger.warn("http.error", { msg }),
      },
      opsHandler(o),
    );
  } catch (e) {
    removeCollector();
    throw new Error(
      `http: cannot listen on ${o.http.host}:${o.http.port}: ${e instanceof Error ? e.message : e}`,
    );
  }
  loopDelay.start();
  return {
    port: listener.port,
    async close() {
      loopDelay.stop();
      removeCollector();
      await listener.close();
    },
  };
}

export function opsHandler(o: OpsOptions): HttpHandler {
  let api: ReturnType<typeof apiHandler> | undefined;
  const token = o.http.token ?? "";
  return async (req) => {
    // A base: Bun hands over a relative URL when the request has no Host (HTTP/1.0).
    const path = new URL(req.url, "http://localhost").pathname;
    if (path.startsWith("/api/v1/") || path === "/api/v1") {
      if (token !== "" && !bearerMatches(req.headers.get("authorization"), token)) {
        return new Response(JSON.stringify({ error: "a valid Bearer token is needed" }), {
          status: 401,
          headers: { "content-type": "application/json", "www-authenticate": "Bearer" },
        });
      }
      const refused = token === "" ? browserProblem(req) : undefined;
      if (refused) return json({ error: refused }, 403);
      const broker = o.broker();
      if (!broker) return json({ error: "starting" }, 503);
      api ??= apiHandler({ broker, logger: o.logger });
      try {
        return await api(req, path);
      } catch (e) {
        o.logger.warn("api.error", { path, msg: `API ${path} failed: ${e}` });
        return json({ error: String(e) }, 500);
      }
    }
    if (req.method !== "GET" && req.method !== "HEAD") {
      const r = json({ error: `${req.method} not allowed here` }, 405);
      r.headers.set("allow", "GET, HEAD"); // a 405 names what is [RFC 9110 15.5.6]
      return r;
    }
    switch (path) {
      case "/health": {
        const r = o.health.report();
        return json({ status: r.ok ? "ok" : "unavailable", ...r }, r.ok ? 200 : 503);
      }
      case "/ready": {
        const state = o.state();
        return json({ status: state }, state === "ready" ? 200 : 503);
      }
      case "/metrics": {
        const out = new PromText();
        await o.metrics.collect(out);
        return new Response(out.toString(), { headers: { "content-type": PROM_CONTENT_TYPE } });
      }
      case "/":
        return new Response(DASHBOARD_HTML, {
          headers: { "content-type": "text/html; charset=utf-8", "cache-control": "no-store" },
        });
    }
    return json({ error: `not found: ${path}` }, 404);
  };
}
