/**
 * The shared fixture of the MQTT.js 5.0 interop test files: one broker with
 * outgoing topic aliases on, plus what a test starts itself (extra brokers,
 * apps, raw MQTT.js clients), all stopped after that test.
 */
import { after, afterEach, before } from "node:test";
import type { IClientOptions, MqttClient } from "mqtt";
import { startBroker, type TestBroker } from "./harness.ts";
import { Clients, uid, withTimeout } from "./mqttjs.ts";
import type { AppBroker } from "./mqtt5_app.ts";

/** Above every bounded wait here, so a broker that never answers fails with our message. */
export const TIMEOUT = { timeout: 20_000 };

/** Registers the hooks of the calling test file and returns its fixture. */
export function useInterop5Broker() {
  let broker: TestBroker | undefined;
  /** Brokers started by one test with its own configuration; stopped after it. */
  const extraBrokers: TestBroker[] = [];
  const clients = new Clients(() => broker!.url);
  const others = new Map<string, Clients>();
  /** Apps and MQTT.js clients a test made itself (enhanced authentication). */
  const apps: AppBroker[] = [];
  const raw: MqttClient[] = [];

  before(async () => {
    // Aliases towards clients are off by default; they are only used with clients
    // that announce a Topic Alias Maximum, so enabling them changes nothing else.
    broker = await startBroker({ mqtt5: { outgoingTopicAliases: true } });
  });

  afterEach(async () => {
    await clients.closeAll();
    for (const c of others.values()) await c.closeAll();
    others.clear();
    for (const b of extraBrokers.splice(0)) await b.stop();
    for (const c of raw.splice(0)) {
      await withTimeout(new Promise<void>((r) => c.end(true, () => r())), "end").catch(() => {});
    }
    for (const a of apps.splice(0)) await a.stop();
  });

  after(async () => {
    await clients.closeAll();
    await broker?.stop();
  });

  return {
    /** The file's broker (set once `before` ran). */
    get broker(): TestBroker {
      return broker!;
    },
    clients,
    apps,
    raw,
    /** Clients of a broker started by the test itself. */
    clientsOf(b: TestBroker): Clients {
      let c = others.get(b.url);
      if (!c) others.set(b.url, c = new Clients(() => b.url));
      return c;
    },
    async startExtra(overrides: Parameters<typeof startBroker>[0]): Promise<TestBroker> {
      const b = await startBroker(overrides);
      if (!b.external) extraBrokers.push(b);
      return b;
    },
  };
}

/** A topic prefix no other test (or earlier run on the same broker) uses. */
export function prefix(): string {
  return `mqttx-interop5/${uid()}`;
}

/** MQTT.js options for a 5.0 client with a fresh id. */
export function v5(o: IClientOptions = {}): IClientOptions {
  return { protocolVersion: 5, clientId: `mqttjs5-${uid()}`, ...o };
}
