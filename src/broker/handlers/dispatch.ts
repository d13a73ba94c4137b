import type {
  AckPacket,
  AuthPacket,
  ConnectPacket,
  DisconnectPacket,
  Packet,
  PublishPacket,
  SubscribePacket,
  UnsubscribePacket,
} from "../../mqtt/packet.ts";
import type { Broker } from "../broker.ts";
import type { Connection } from "../connection.ts";
import { handleConnect } from "./connect.ts";
import { handlePublish } from "./publish.ts";
import { handlePuback, handlePubcomp, handlePubrec, handlePubrel } from "./acks.ts";
import { handleSubscribe } from "./subscribe.ts";
import { handleUnsubscribe } from "./unsubscribe.ts";
import { handleDisconnect } from "./disconnect.ts";
import { handleAuth } from "./auth.ts";

/** PINGRESP, as sent: no packet to encode per PINGREQ. */
const PINGRESP = new Uint8Array([0xd0, 0]);

/**
 * From packet type to handler; `type` is `packet.type`, read from the fixed header by the
 * decoder. A PUBLISH on a connected client (nearly every packet) is decided first and alone,
 * on `type`: no property of the packet is read here, and the rest of the switch is not on the
 * per-message path, so the JIT neither compiles it into that path nor throws that path's code
 * away when a PINGREQ comes after a run of PUBLISHes (see dispatchOther).
 */
export function dispatch(
  broker: Broker,
  conn: Connection,
  packet: Packet,
  type: number,
): void | Promise<void> {
  if (type === 3 && conn.connected) return handlePublish(broker, conn, packet as PublishPacket);
  return dispatchOther(broker, conn, packet, type);
}

/**
 * One switch from packet type to handler; the first packet must be CONNECT [MQTT-3.1.0-1].
 * On `type` too: `packet.type`, compiled while only CONNECTs came, would fail at a PINGREQ.
 */
function dispatchOther(
  broker: Broker,
  conn: Connection,
  packet: Packet,
  type: number,
): void | Promise<void> {
  if (type === 1) return handleConnect(broker, conn, packet as ConnectPacket);
  // AUTH may flow before CONNACK, during an enhanced authentication exchange.
  if (type === 15) return handleAuth(broker, conn, packet as AuthPacket);
  if (!conn.connected) {
    conn.drop("the first packet was not CONNECT"); // [MQTT-3.1.0-1]
    return;
  }
  switch (type) {
    case 3:
      return handlePublish(broker, conn, packet as PublishPacket);
    case 4:
      return handlePuback(broker, conn, packet as AckPacket<4>);
    case 5:
      return handlePubrec(broker, conn, packet as AckPacket<5>);
    case 6:
      return handlePubrel(conn, packet as AckPacket<6>);
    case 7:
      return handlePubcomp(broker, conn, packet as AckPacket<7>);
    case 8:
      return handleSubscribe(broker, conn, packet as SubscribePacket);
    case 10:
      return handleUnsubscribe(broker, conn, packet as UnsubscribePacket);
    case 12:
      // As bytes: the encoder's code, compiled for CONNACKs, is not sent a new packet class.
      conn.sendBytes(PINGRESP); // [MQTT-3.12.4-1]
      return;
    case 14:
      return handleDisconnect(broker, conn, packet as DisconnectPacket);
    default:
      // CONNACK, SUBACK, UNSUBACK, PINGRESP only flow server → client; AUTH needs
      // an authentication method, which this connection did not negotiate.
      conn.close(0x82); // Protocol Error
  }
}
