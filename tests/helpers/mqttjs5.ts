/**
 * MQTT 5.0 helpers for interop tests with MQTT.js: a log of the packets an
 * MQTT.js client sent and received (to see reason codes, topic aliases and
 * flow control on the wire, which the `message` event hides), and small
 * conversions of MQTT.js's property shapes.
 */
import type { MqttClient, Packet } from "mqtt";

export interface LoggedPacket {
  dir: "in" | "out";
  packet: Packet;
}

/** Every packet one MQTT.js client sent ("out") and received ("in"), in order. */
export class PacketLog {
  readonly packets: LoggedPacket[] = [];

  constructor(client: MqttClient) {
    client.on("packetreceive", (packet) => this.add({ dir: "in", packet }));
    client.on("packetsend", (packet) => this.add({ dir: "out", packet }));
  }

  private add(p: LoggedPacket): void {
    this.packets.push(p);
  }

  /** Received packets of one command, e.g. "puback". */
  received<T = Packet>(cmd: Packet["cmd"]): T[] {
    return this.packets.filter((p) => p.dir === "in" && p.packet.cmd === cmd).map((p) =>
      p.packet as unknown as T
    );
  }

  /** Sent packets of one command, e.g. "publish". */
  sent<T = Packet>(cmd: Packet["cmd"]): T[] {
    return this.packets.filter((p) => p.dir === "out" && p.packet.cmd === cmd).map((p) =>
      p.packet as unknown as T
    );
  }
}

/** MQTT.js user properties (`{k: v | v[]}`) as ordered [key, value] pairs. */
export function userPropertyPairs(
  props: Record<string, string | string[]> | undefined,
): [string, string][] {
  const out: [string, string][] = [];
  for (const [k, v] of Object.entries(props ?? {})) {
    for (const one of Array.isArray(v) ? v : [v]) out.push([k, one]);
  }
  return out;
}

/** MQTT.js gives one Subscription Identifier as a number, several as an array. */
export function subscriptionIds(id: number | number[] | undefined): number[] {
  if (id === undefined) return [];
  return Array.isArray(id) ? id : [id];
}
