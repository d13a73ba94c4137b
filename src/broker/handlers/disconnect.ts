import type { DisconnectPacket } from "../../mqtt/packet.ts";
import type { Broker } from "../broker.ts";
import type { Connection } from "../connection.ts";

/** A client DISCONNECT: no will [MQTT-3.1.2-10] (5.0: unless reason 0x04), then close. */
export function handleDisconnect(broker: Broker, conn: Connection, p: DisconnectPacket): void {
  const session = conn.session!;
  if (conn.version === 5) {
    const expiry = p.properties?.sessionExpiryInterval;
    if (expiry !== undefined) {
      // Raising the expiry from 0 at DISCONNECT is a protocol error [MQTT-3.14.2-2].
      if (session.expiryInterval === 0 && expiry !== 0) {
        conn.close(0x82);
        return;
      }
      broker.lifecycle.setExpiry(session, expiry);
    }
    conn.publishWillOnClose = p.reasonCode === 0x04; // Disconnect with Will Message
  } else {
    conn.publishWillOnClose = false;
  }
  conn.close();
}
