import type { Packet } from "../../mqtt/packet.ts";
import type { Broker } from "../broker.ts";
import type { Connection } from "../connection.ts";
import { handleConnect } from "./connect.ts";
import { handlePublish } from "./publish.ts";
import { handlePuback, handlePubcomp, handlePubrec, handlePubrel } from "./acks.ts";
import { handleSubscribe } from "./subscribe.ts";
import { handleUnsubscribe } from "./unsubscribe.ts";
import { handleDisconnect } from "./disconnect.ts";
import { handleAuth } from "./auth.ts";

/**
 * From packet type to handler. A PUBLISH on a connected client (nearly every packet) is
 * decided first and alone: the rest of the switch is not on the per-message path, so the JIT
 * does not compile it into that path (see dispatchOther).
 */
export function dispatch(broker: Broker, conn: Connection, packet: Packet): void | Promise<void> {
  if (packet.type === 3 && conn.connected) return handlePublish(broker, conn, packet);
  return dispatchOther(broker, conn, packet);
}

/** One switch from packet type to handler; the first packet must be CONNECT [MQTT-3.1.0-1]. */
function dispatchOther(broker: Broker, conn: Connection, packet: Packet): void | Promise<void> {
  if (packet.type === 1) return handleConnect(broker, conn, packet);
  // AUTH may flow before CONNACK, during an enhanced authentication exchange.
  if (packet.type === 15) return handleAuth(broker, conn, packet);
  if (!conn.connected) {
    conn.drop("the first packet was not CONNECT"); // [MQTT-3.1.0-1]
    return;
  }
  switch (packet.type) {
    case 3:
      return handlePublish(broker, conn, packet);
    case 4:
      return handlePuback(broker, conn, packet);
    case 5:
      return handlePubrec(broker, conn, packet);
    case 6:
      return handlePubrel(conn, packet);
    case 7:
      return handlePubcomp(broker, conn, packet);
    case 8:
      return handleSubscribe(broker, conn, packet);
    case 10:
      return handleUnsubscribe(broker, conn, packet);
    case 12:
      conn.send({ type: 13 }); // [MQTT-3.12.4-1]
      return;
    case 14:
      return handleDisconnect(broker, conn, packet);
    default:
      // CONNACK, SUBACK, UNSUBACK, PINGRESP only flow server → client; AUTH needs
      // an authentication method, which this connection did not negotiate.
      conn.close(0x82); // Protocol Error
  }
}
