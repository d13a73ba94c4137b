import type { UnsubscribePacket } from "../../mqtt/packet.ts";
import type { Broker } from "../broker.ts";
import type { Connection } from "../connection.ts";

/** UNSUBSCRIBE: remove each filter, answer UNSUBACK [MQTT-3.10.4-4]. */
export function handleUnsubscribe(broker: Broker, conn: Connection, p: UnsubscribePacket): void {
  const session = conn.session!;
  const reasonCodes = p.topicFilters.map((f) => broker.removeSubscription(session, f) ? 0x00 : 0x11 // No subscription existed
  );
  conn.send({ type: 11, packetId: p.packetId, reasonCodes });
}
