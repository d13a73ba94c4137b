import type { UnsubscribePacket } from "../../mqtt/packet.ts";
import { topicFilterError } from "../../mqtt/topic.ts";
import type { Broker } from "../broker.ts";
import type { Connection } from "../connection.ts";
import { removeSubscription } from "../session_subscriptions.ts";

/** UNSUBSCRIBE: remove each filter, answer UNSUBACK with a code per filter [MQTT-3.10.4-4]. */
export function handleUnsubscribe(
  broker: Broker,
  conn: Connection,
  p: UnsubscribePacket,
): void | Promise<void> {
  const session = conn.session!;
  if (conn.version === 5 && session.incomingQos2.has(p.packetId)) {
    const reasonCodes = p.topicFilters.map(() => 0x91); // Packet Identifier in use
    conn.send({ type: 11, packetId: p.packetId, reasonCodes });
    return;
  }
  const reasonCodes = p.topicFilters.map((f) => {
    if (removeSubscription(broker, session, f)) return 0x00;
    return topicFilterError(f) ? 0x8f : 0x11; // Topic Filter invalid / No subscription existed
  });
  const unsuback = () => conn.send({ type: 11, packetId: p.packetId, reasonCodes });
  // A persistent session's UNSUBACK waits until the store has the change.
  if (session.journal) return session.journal.acknowledge(conn, unsuback);
  unsuback();
}
