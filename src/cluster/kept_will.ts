/**
 * A will as the bus keeps it while its client is connected, for the node that
 * publishes it if this one dies. Its Message Expiry Interval starts when the
 * will is published (MQTT 5.0 3.1.3.2.4), so the bus keeps the interval, not
 * an absolute time taken at CONNECT.
 */
import { willMessage } from "../broker/broker.ts";
import type { Will } from "../mqtt/packet.ts";
import type { MessageData } from "../store/types.ts";

/** The will of `clientId` as kept in the bus: expiry as an interval in its properties. */
export function keptWill(clientId: string, will: Will): MessageData {
  const m = willMessage(clientId, will);
  const interval = will.properties?.messageExpiryInterval;
  if (interval === undefined) return m;
  return {
    ...m,
    expiresAt: undefined,
    properties: { ...m.properties, messageExpiryInterval: interval },
  };
}

/** A kept will, published now: its expiry counts from now. */
export function willToPublish(w: MessageData): MessageData {
  const interval = w.properties?.messageExpiryInterval;
  if (interval === undefined) return w;
  const { messageExpiryInterval: _e, ...rest } = w.properties!;
  return {
    ...w,
    properties: Object.keys(rest).length > 0 ? rest : undefined,
    expiresAt: Date.now() + interval * 1000,
  };
}
