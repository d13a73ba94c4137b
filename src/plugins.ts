/**
 * Turns configuration into broker hooks: authentication, topic authorization,
 * $SYS, rate limits. One place, so each feature stays in its own folder and
 * the composition root stays short. Runtime-free.
 */
import type { MqttxConfig } from "./config/types.ts";
import type { Broker } from "./broker/broker.ts";
import type { BrokerHooks } from "./broker/hooks.ts";

export interface PluginContext {
  config: MqttxConfig;
  /** The broker the hooks serve (created before plugins are built). */
  broker: Broker;
  log: (line: string) => void;
  /** Reads a file (password file, certificates); the runtime supplies it. */
  readTextFile: (path: string) => Promise<string>;
  /** Version shown by $SYS. */
  version: string;
}

/** A feature that needs to stop timers or connections at shutdown. */
export interface Plugin {
  hooks: BrokerHooks;
  stop?(): void | Promise<void>;
}

/** Build every plugin the configuration asks for, in the order their hooks must run. */
export function buildPlugins(_ctx: PluginContext): Promise<Plugin[]> {
  const plugins: Plugin[] = [];
  // Order matters: authentication first, then authorization, then observers.
  // --- authentication (src/auth/) ---
  // --- topic authorization and ACL (src/acl/) ---
  // --- rate limits (src/ratelimit/) ---
  // --- $SYS (src/sys/) ---
  return Promise.resolve(plugins);
}
