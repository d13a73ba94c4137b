/**
 * Test harness: starts the broker in-process on an ephemeral loopback port
 * with the runtime adapter of whichever runtime runs the tests, and closes
 * everything a test opened.
 *
 * MQTTX_TEST_EXTERNAL=host:port runs the same tests against another broker
 * (e.g. mosquitto) to check the tests themselves; tests that need a config
 * override are skipped then.
 */
import type { MqttxConfig } from "../../src/config/types.ts";
import type { Runtime } from "../../src/runtime/types.ts";
import { afterEach } from "node:test";
import { Clients } from "./mqttjs.ts";
import { closeAll } from "./packet_client.ts";

export type DeepPartial<T> = { [K in keyof T]?: T[K] extends object ? DeepPartial<T[K]> : T[K] };

export interface TestBroker {
  host: string;
  port: number;
  /** mqtt://host:port */
  url: string;
  /** True when running against MQTTX_TEST_EXTERNAL. */
  external: boolean;
  /** The broker core (its stats), when it runs in this process. */
  core?: import("../../src/broker/broker.ts").Broker;
  stop(): Promise<void>;
}

/** The runtime adapter for the runtime executing the tests (tests may sniff; src may not). */
export async function testRuntime(): Promise<Runtime> {
  if ("Deno" in globalThis) return (await import("../../src/runtime/deno.ts")).denoRuntime;
  return (await import("../../src/runtime/bun.ts")).bunRuntime;
}

export async function startBroker(overrides: DeepPartial<MqttxConfig> = {}): Promise<TestBroker> {
  const external = env("MQTTX_TEST_EXTERNAL");
  if (external) {
    const [host, port] = external.split(":");
    return {
      host,
      port: Number(port),
      url: `mqtt://${host}:${port}`,
      external: true,
      stop: () => Promise.resolve(),
    };
  }
  const { defaultConfig } = await import("../../src/config/schema.ts");
  const { startApp } = await import("../../src/app.ts");
  const config = merge(defaultConfig(), {
    host: "127.0.0.1",
    socket: { port: 0 },
    ...overrides,
  } as DeepPartial<MqttxConfig>);
  const app = await startApp(await testRuntime(), config, { quiet: true });
  const port = app.ports.socket!;
  return {
    host: "127.0.0.1",
    port,
    url: `mqtt://127.0.0.1:${port}`,
    external: false,
    core: app.broker,
    stop: () => app.stop(),
  };
}

export function env(name: string): string | undefined {
  // node:process works on both Deno and Bun.
  return (globalThis as { process?: { env: Record<string, string | undefined> } }).process?.env[
    name
  ];
}

/** Integration tests whose peer program is missing skip, unless CI demands them. */
export function mustRun(): boolean {
  return env("MQTTX_REQUIRE_INTEGRATION") === "1";
}

function merge<T>(base: T, over: DeepPartial<T>): T {
  const out = structuredClone(base) as Record<string, unknown>;
  for (const [k, v] of Object.entries(over as Record<string, unknown>)) {
    if (v && typeof v === "object" && !Array.isArray(v) && !(v instanceof Uint8Array)) {
      out[k] = merge(out[k], v as DeepPartial<unknown>);
    } else if (v !== undefined) out[k] = v;
  }
  return out as T;
}

/**
 * For a test file whose tests each start a broker: `app.broker` is set by the test
 * (`app.broker = await startBroker(...)`); `app.clients` are MQTT.js clients on it. After each
 * test the clients end, the broker stops, and in-memory brokers of packet_client.ts close.
 */
export function brokerPerTest(): { broker: TestBroker | undefined; clients: Clients } {
  const app: { broker: TestBroker | undefined; clients: Clients } = {
    broker: undefined,
    clients: new Clients(() => app.broker!.url),
  };
  afterEach(async () => {
    await app.clients.closeAll();
    await app.broker?.stop();
    app.broker = undefined;
    await closeAll();
  });
  return app;
}
