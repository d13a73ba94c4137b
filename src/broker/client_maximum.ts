/**
 * A 5.0 client's Maximum Packet Size binds every packet the broker sends it [MQTT-3.1.2-24].
 * PUBLISHes are checked where they are encoded (delivery.ts drops one that does not fit
 * [MQTT-3.1.2-25]); the others come here when too large. The Reason String and User Properties
 * go first: the spec has them left out rather than exceed the limit ([MQTT-3.2.2-19/20] CONNACK,
 * [MQTT-3.9.2-1/2] SUBACK, [MQTT-3.14.2-3/4] DISCONNECT, and so on for each packet). Then a
 * CONNACK's properties that only restate the spec's defaults: leaving them out tells the client
 * the same. What still does not fit cannot be sent.
 */
import { encodedLength } from "../mqtt/encoder.ts";
import type { Packet, Properties } from "../mqtt/packet.ts";

/** CONNACK properties whose absence means the same value (5.0, 3.2.2.3). */
const CONNACK_DEFAULTS: Partial<Record<keyof Properties, number>> = {
  receiveMaximum: 65535,
  maximumQoS: 2,
  retainAvailable: 1,
  topicAliasMaximum: 0,
  wildcardSubscriptionAvailable: 1,
  subscriptionIdentifierAvailable: 1,
  sharedSubscriptionAvailable: 1,
};

/** `packet` (not a PUBLISH) trimmed to `max` bytes, or undefined when it cannot be. */
export function fitToClient(packet: Packet, max: number): Packet | undefined {
  if (packet.type === 3 || !("properties" in packet) || !packet.properties) return undefined;
  const { reasonString: _r, userProperties: _u, ...kept } = packet.properties;
  let trimmed = { ...packet, properties: kept } as Packet;
  if (encodedLength(trimmed, 5) <= max) return trimmed;
  if (packet.type !== 2) return undefined;
  const essential: Properties = {};
  for (const [k, v] of Object.entries(kept) as [keyof Properties, unknown][]) {
    if (CONNACK_DEFAULTS[k] !== v) (essential as Record<string, unknown>)[k] = v;
  }
  trimmed = { ...packet, properties: essential };
  return encodedLength(trimmed, 5) <= max ? trimmed : undefined;
}

/** Whether `packet` can go to a client whose limit is `max` (0: none), trimmed if need be. */
export function fitsClient(max: number, packet: Packet): boolean {
  return max === 0 || encodedLength(packet, 5) <= max || fitToClient(packet, max) !== undefined;
}
