/**
 * mqttx with `bridges:` configured, started in-process on an ephemeral port,
 * its log captured; and waits on a bridge's retained `$SYS` status.
 */
import type { BridgeConfig, MqttxConfig } from "../../src/config/types.ts";
import type { RunningApp } from "../../src/app.ts";
import { type DeepPartial, testRuntime } from "./harness.ts";
import { type Clients, type Connected, subscribe } from "./mqttjs.ts";

export interface BridgeApp {
  app: RunningApp;
  url: string;
  log: string[];
}

type Rule = BridgeConfig["topics"][number];
export type BridgeSpec =
  & Partial<Omit<BridgeConfig, "topics">>
  & Pick<BridgeConfig, "name" | "url">
  & { topics: (Partial<Rule> & Pick<Rule, "filter">)[] };

/** Defaults as the config loader gives them, with fast reconnects for tests. */
export function bridge(spec: BridgeSpec): BridgeConfig {
  return {
    protocolVersion: 5,
    keepalive: 60,
    cleanStart: false,
    queueMax: 100_000,
    reconnectDelay: 100,
    reconnectMaxDelay: 500,
    ...spec,
    topics: spec.topics.map((t) => ({
      direction: "out" as const,
      qos: 2,
      localPrefix: "",
      remotePrefix: "",
      ...t,
    })),
  };
}

export async function startBridgeApp(
  bridges: BridgeConfig[],
  over: DeepPartial<MqttxConfig> = {},
): Promise<BridgeApp> {
  const { defaultConfig } = await import("../../src/config/schema.ts");
  const { startApp } = await import("../../src/app.ts");
  const config = defaultConfig();
  config.host = "127.0.0.1";
  config.socket.port = 0;
  config.sysTopic = { enable: true, interval: 100 };
  config.bridges = bridges;
  Object.assign(config, over);
  const log: string[] = [];
  const app = await startApp(await testRuntime(), config, { log: (l) => log.push(l) });
  return { app, url: `mqtt://127.0.0.1:${app.ports.socket}`, log };
}

export interface BridgeStatus {
  connected: boolean;
  queued: number;
  sent: number;
  dropped: number;
  /** Messages the upstream refused (reason code >= 0x80), removed from the queue. */
  refused: number;
  received: number;
}

/** Subscribes `c` to the bridge's $SYS status; `until` waits for a status that satisfies `pred`. */
export async function watchStatus(c: Connected, name: string) {
  const topic = `$SYS/broker/bridges/${name}/status`;
  await subscribe(c.client, topic);
  const statuses = () =>
    c.inbox.messages.filter((m) => m.topic === topic).map((m) =>
      JSON.parse(m.payload) as BridgeStatus
    );
  return {
    statuses,
    async until(pred: (s: BridgeStatus) => boolean, what: string, ms = 20_000) {
      await c.inbox.until(() => statuses().some(pred), `bridge ${name} status: ${what}`, ms);
      return statuses().findLast(pred)!;
    },
  };
}

/** A connected local client watching the bridge's status. */
export async function statusWatcher(local: Clients, name: string) {
  return watchStatus(await local.connect({ protocolVersion: 5 }), name);
}
