/**
 * mqttx with the Kafka bridge enabled against a mock cluster, its log lines
 * kept for assertions; `bridgeStatus` reads `$SYS/broker/bridge/kafka`.
 */
import type { RunningApp } from "../../src/app.ts";
import type { MessageBridgeConfig } from "../../src/config/types.ts";
import { testRuntime } from "./harness.ts";
import { Clients, subscribe, withTimeout } from "./mqttjs.ts";
import type { MockKafka } from "./kafka_mock.ts";

export interface BridgeBroker {
  app: RunningApp;
  url: string;
  port: number;
  logs: string[];
  stop(): Promise<void>;
}

export async function startBridge(
  bootstrap: string,
  bridge: Partial<MessageBridgeConfig>,
  port = 0,
): Promise<BridgeBroker> {
  const { defaultConfig } = await import("../../src/config/schema.ts");
  const { startApp } = await import("../../src/app.ts");
  const config = defaultConfig();
  config.host = "127.0.0.1";
  config.socket.port = port;
  config.sysTopic.enable = true;
  config.messageBridge = {
    ...config.messageBridge,
    enable: true,
    kafkaBrokers: [bootstrap],
    ...bridge,
  };
  const logs: string[] = [];
  const app = await startApp(await testRuntime(), config, { log: (l) => logs.push(l) });
  return {
    app,
    logs,
    port: app.ports.socket!,
    url: `mqtt://127.0.0.1:${app.ports.socket}`,
    stop: () => app.stop(),
  };
}

export interface BridgeStatus {
  producer: string;
  buffered: number;
  sent: number;
  dropped: number;
  failed: number;
  consumer: string;
  fromKafka: number;
  unroutable: number;
}

/** Subscribe to the bridge's $SYS topic until `pred` holds for its latest status. */
export async function bridgeStatus(
  clients: Clients,
  pred: (s: BridgeStatus) => boolean,
  what: string,
  ms = 30_000,
): Promise<BridgeStatus> {
  const deadline = Date.now() + ms;
  // Each subscribe is answered with the current status; state changes are pushed as well.
  const c = await clients.connect();
  try {
    let last: BridgeStatus | undefined;
    while (Date.now() < deadline) {
      const seen = c.inbox.messages.length;
      await subscribe(c.client, "$SYS/broker/bridge/kafka");
      await withTimeout(c.inbox.count(seen + 1, 5_000), "bridge status");
      last = JSON.parse(c.inbox.messages.at(-1)!.payload) as BridgeStatus;
      if (pred(last)) return last;
      await c.client.unsubscribeAsync("$SYS/broker/bridge/kafka");
      await new Promise((r) => setTimeout(r, 300));
    }
    throw new Error(`bridge status never ${what}; last ${JSON.stringify(last)}`);
  } finally {
    c.client.end(true);
  }
}

/** A test's mock cluster, bridge broker and MQTT.js clients; `reset()` (afterEach) ends them all. */
export class BridgeFixture {
  mock: MockKafka | undefined;
  b: BridgeBroker | undefined;
  readonly clients = new Clients(() => this.b!.url);

  async reset(): Promise<void> {
    await this.clients.closeAll();
    await this.b?.stop();
    await this.mock?.stop();
    this.b = this.mock = undefined;
  }
}
