/**
 * Helpers for the operations endpoint tests: a broker with `http.enable` on
 * ephemeral ports, authorized fetches, and the official Prometheus parser
 * (Debian's python3-prometheus-client) run on a scrape.
 */
import { afterEach } from "node:test";
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import type { MqttxConfig } from "../../src/config/types.ts";
import { startTestApp, type TestApp } from "./certs.ts";
import type { DeepPartial } from "./harness.ts";
import { Clients, withTimeout } from "./mqttjs.ts";

export const TOKEN = "test-token-0123456789";

export interface OpsApp extends TestApp {
  base: string;
  mqttUrl: string;
  /** fetch on the endpoint with the Bearer token. */
  api(path: string, init?: RequestInit): Promise<Response>;
}

export async function startOpsApp(over: DeepPartial<MqttxConfig> = {}): Promise<OpsApp> {
  const t = await startTestApp({
    ...over,
    http: { enable: true, host: "127.0.0.1", port: 0, token: TOKEN, ...over.http },
  });
  const base = `http://127.0.0.1:${t.app.httpPort}`;
  return {
    ...t,
    base,
    mqttUrl: `mqtt://127.0.0.1:${t.app.ports.socket}`,
    api: (path, init = {}) =>
      fetch(base + path, {
        ...init,
        headers: { authorization: `Bearer ${TOKEN}`, ...init.headers },
      }),
  };
}

/**
 * One broker per test with MQTT.js clients on it, both closed after each test:
 * `const ops = useOpsApp();` at the top of a test file, then `await ops.start()`.
 */
export function useOpsApp(): {
  clients: Clients;
  start(over?: DeepPartial<MqttxConfig>): Promise<OpsApp>;
} {
  let app: OpsApp | undefined;
  let url = "";
  const clients = new Clients(() => url);
  afterEach(async () => {
    await clients.closeAll();
    await app?.stop();
    app = undefined;
  });
  return {
    clients,
    async start(over = {}) {
      app = await startOpsApp(over);
      url = app.mqttUrl;
      return app;
    },
  };
}

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

// Debian's package installs into the system Python; a pyenv shim on PATH would not see it.
const PYTHON = existsSync("/usr/bin/python3") ? "/usr/bin/python3" : "python3";

const PARSE = `
import json, sys
from prometheus_client.parser import text_string_to_metric_families
out = []
for family in text_string_to_metric_families(sys.stdin.read()):
    for s in family.samples:
        out.append({"family": family.name, "type": family.type, "name": s.name,
                    "labels": s.labels, "value": s.value})
print(json.dumps(out))
`;

/** Parse a scrape with prometheus_client's parser; throws with its message when it refuses. */
export function parsePrometheus(text: string): Sample[] {
  const r = spawnSync(PYTHON, ["-c", PARSE], { input: text, encoding: "utf8" });
  if (r.error) throw r.error;
  if (r.status !== 0) throw new Error(`prometheus_client refused the scrape: ${r.stderr}`);
  return JSON.parse(r.stdout);
}

/** True when python3 and prometheus_client are installed. */
export function prometheusParserAvailable(): boolean {
  const r = spawnSync(PYTHON, ["-c", "import prometheus_client.parser"], { stdio: "ignore" });
  return r.error === undefined && r.status === 0;
}

/** The value of one sample, matching every given label; undefined when absent. */
export function sample(
  samples: Sample[],
  name: string,
  labels: Record<string, string> = {},
): number | undefined {
  return samples.find((s) =>
    s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v)
  )?.value;
}

/** Poll `check` until it returns true (bounded: 60 s). */
export async function pollUntil(check: () => Promise<boolean>, what: string): Promise<void> {
  await withTimeout(
    (async () => {
      while (!(await check())) await new Promise((r) => setTimeout(r, 200));
    })(),
    what,
    60_000,
  );
}
