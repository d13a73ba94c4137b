/**
 * Starts mqttx in-process (like `startBroker` in ./harness.ts) and also hands
 * back the running app, so an interop test can add broker hooks that the
 * configuration cannot express, e.g. an enhanced-authentication method.
 * Not usable against MQTTX_TEST_EXTERNAL: callers skip then.
 */
import type { BrokerHooks } from "../../src/broker/hooks.ts";
import type { RunningApp } from "../../src/app.ts";
import { testRuntime } from "./harness.ts";

export interface AppBroker {
  app: RunningApp;
  url: string;
  stop(): Promise<void>;
}

/** mqttx with its default configuration on an ephemeral port, plus `hooks`. */
export async function startAppWithHooks(hooks: BrokerHooks[]): Promise<AppBroker> {
  const { defaultConfig } = await import("../../src/config/schema.ts");
  const { startApp } = await import("../../src/app.ts");
  const config = defaultConfig();
  config.host = "127.0.0.1";
  config.socket.port = 0;
  const app = await startApp(await testRuntime(), config, { quiet: true });
  // The broker reads its hook list by reference (see src/app.ts).
  app.broker.hooks.push(...hooks);
  return {
    app,
    url: `mqtt://127.0.0.1:${app.ports.socket}`,
    stop: () => app.stop(),
  };
}
