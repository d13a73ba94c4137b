import type { Properties, QoS } from "../mqtt/packet.ts";
import type { Broker } from "./broker.ts";
import { deliver } from "./delivery.ts";
import type { Message } from "./message.ts";

export interface LocalPublishOptions {
  qos?: QoS;
  retain?: boolean;
  properties?: Properties;
}

/**
 * The broker's own in-process client: $SYS, bridges and embedding programs
 * publish through it, so internal messages take exactly the path client
 * messages take (hooks, retained, routing).
 */
export class LocalClient {
  readonly broker: Broker;
  readonly clientId: string;

  constructor(broker: Broker, clientId = "$mqttx") {
    this.broker = broker;
    this.clientId = clientId;
  }

  /** Publish to every matching subscription. Returns how many sessions got it. */
  publish(
    topic: string,
    payload: Uint8Array | string,
    opts: LocalPublishOptions = {},
  ): number | Promise<number> {
    return this.broker.publish(this.message(topic, payload, opts));
  }

  /**
   * Deliver to one connected or persistent session only, bypassing routing
   * (e.g. a $SYS answer to the client that just subscribed). False if unknown.
   */
  sendTo(
    clientId: string,
    topic: string,
    payload: Uint8Array | string,
    opts: LocalPublishOptions = {},
  ): boolean {
    const session = this.broker.sessions.get(clientId);
    if (!session) return false;
    const m = this.message(topic, payload, opts);
    deliver(session, m, m.qos, m.retain, undefined, this.broker.limits);
    return true;
  }

  private message(topic: string, payload: Uint8Array | string, opts: LocalPublishOptions): Message {
    return {
      topic,
      payload: typeof payload === "string" ? new TextEncoder().encode(payload) : payload,
      owned: true,
      qos: opts.qos ?? 0,
      retain: opts.retain ?? false,
      properties: opts.properties,
      from: this.clientId,
      internal: true,
    };
  }
}
