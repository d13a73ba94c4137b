/**
 * What the bridge's two MQTT.js message stores (mqtt_outgoing.ts,
 * mqtt_incoming.ts) share: MQTT.js's packet and callback types as far as they
 * use them, the PUBLISH packet rebuilt from a kept message, and a queue write
 * turned into MQTT.js's callback.
 */
import { Buffer } from "node:buffer";
import type { OutboundMessage } from "./mqtt_queue.ts";

/** MQTT.js's Packet, as far as the stores use it. */
export interface StorePacket {
  cmd: string;
  messageId?: number;
  topic?: string;
  payload?: string | Uint8Array;
  qos?: number;
  retain?: boolean;
  [key: string]: unknown;
}
export type Done = (err?: Error, packet?: StorePacket) => void;

/** The PUBLISH of a kept message under `messageId` (the payload as a Buffer, as MQTT.js has it). */
export function publishPacket(m: OutboundMessage, messageId: number, dup: boolean): StorePacket {
  const p = m.payload;
  return {
    cmd: "publish",
    topic: m.topic,
    payload: Buffer.from(p.buffer, p.byteOffset, p.byteLength),
    qos: m.qos,
    retain: m.retain,
    dup,
    messageId,
  };
}

/** Calls `cb` once the write `r` is done (at once if it was synchronous), with its error. */
export function settle(r: void | Promise<void>, cb: (err?: Error) => void): Promise<void> {
  if (!(r instanceof Promise)) return (cb(), Promise.resolve());
  return r.then(() => cb(), (e) => cb(e instanceof Error ? e : new Error(String(e))));
}
