/**
 * Session churn for the store leak tests (tests/durable_churn*_test.ts): a
 * broker on a session store gets `sessions` persistent 5.0 sessions, each
 * subscribed to a shared topic and to its own, then disconnected; a
 * publisher sends 3 shared messages and one of each session's own, all
 * queued (the sessions are offline) until the sessions expire.
 */
import type { Broker } from "../../src/broker/broker.ts";
import { PacketClient, publishPacket } from "./packet_client.ts";

export async function fillExpiringSessions(
  broker: Broker,
  sessions: number,
  expirySeconds: number,
): Promise<void> {
  for (let i = 0; i < sessions; i += 500) {
    await Promise.all(Array.from({ length: Math.min(500, sessions - i) }, async (_, j) => {
      const id = `churn-${i + j}`;
      const { client } = await PacketClient.connect(broker, {
        clientId: id,
        protocolVersion: 5,
        clean: false,
        properties: { sessionExpiryInterval: expirySeconds },
      });
      client.send({
        type: 8,
        packetId: 1,
        subscriptions: [{ topicFilter: "churn/all", qos: 1 }, { topicFilter: id, qos: 2 }],
      });
      await client.expect(9);
      client.send({ type: 14, reasonCode: 0 });
      await client.expectClosed();
    }));
  }
  const { client: pub } = await PacketClient.connect(broker, { clientId: "churn-pub" });
  let packetId = 0;
  for (let k = 0; k < 3; k++) {
    pub.send(publishPacket("churn/all", `shared ${k}`, 1, ++packetId));
    await pub.expect(4, 30_000);
  }
  for (let i = 0; i < sessions; i += 1000) {
    const n = Math.min(1000, sessions - i);
    for (let j = 0; j < n; j++) {
      pub.send(publishPacket(`churn-${i + j}`, `own ${i + j}`, 1, ++packetId));
    }
    for (let j = 0; j < n; j++) await pub.expect(4, 30_000);
  }
  await broker.journal!.settled();
}
