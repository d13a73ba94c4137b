import type { PubackPacket, PubcompPacket, PubrecPacket, PubrelPacket } from "../../mqtt/packet.ts";
import type { Broker } from "../broker.ts";
import type { Connection } from "../connection.ts";
import { drainQueue } from "../delivery.ts";
import { completed, incomingRemoved, released } from "../session_state.ts";

/** PUBACK completes an outgoing QoS 1 delivery [MQTT-4.3.2-1]. */
export function handlePuback(broker: Broker, conn: Connection, p: PubackPacket): void {
  complete(broker, conn, p.packetId, 1);
}

/** PUBCOMP completes an outgoing QoS 2 delivery. */
export function handlePubcomp(broker: Broker, conn: Connection, p: PubcompPacket): void {
  complete(broker, conn, p.packetId, 2);
}

/** The delivery ends: free its packet id, and let a queued message take its place. */
function complete(broker: Broker, conn: Connection, packetId: number, qos: 1 | 2): void {
  const session = conn.session!;
  if (session.inflight.get(packetId)?.qos !== qos) return; // unknown or the other flow: ignore
  completed(session, packetId);
  drainQueue(session, broker.limits);
}

/** PUBREC: the client has the QoS 2 message; answer PUBREL [MQTT-4.3.3-1]. */
export function handlePubrec(broker: Broker, conn: Connection, p: PubrecPacket): void {
  const session = conn.session!;
  const o = session.inflight.get(p.packetId);
  if (!o || o.qos !== 2) {
    conn.sendAck(6, p.packetId, 0x92); // Packet Identifier not found (5.0 only)
    return;
  }
  if ((p.reasonCode ?? 0) >= 0x80) {
    // 5.0: the client refused it; the delivery ends here [MQTT-4.3.3-4].
    complete(broker, conn, p.packetId, 2);
    return;
  }
  released(session, p.packetId, o);
  conn.sendAck(6, p.packetId);
}

/** PUBREL releases an incoming QoS 2 packet id; answer PUBCOMP [MQTT-4.3.3-11]. */
export function handlePubrel(conn: Connection, p: PubrelPacket): void {
  const session = conn.session!;
  const known = incomingRemoved(session, p.packetId);
  conn.sendAck(7, p.packetId, known ? 0 : 0x92);
}
