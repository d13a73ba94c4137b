// Every way a connection reaches the broker (the callback path with sync or async writes, and a
// Web-stream pair adapted by connFromStreams) carries the same protocol.
import { afterEach, describe, test } from "node:test";
import assert from "node:assert/strict";
import { closeAll, newBroker, PacketClient, str, text } from "./helpers/packet_client.ts";

afterEach(closeAll);

for (const mode of ["callbacks-sync", "callbacks-async", "streams"] as const) {
  describe(`Conn ${mode}`, () => {
    test("QoS 1 and 2 both ways, many packets per chunk", async () => {
      const b = newBroker();
      const { client: s } = await PacketClient.connect(b, { clientId: "s" }, mode);
      s.send({ type: 8, packetId: 1, subscriptions: [{ topicFilter: "cb/#", qos: 2 }] });
      await s.expect(9);
      const { client: p } = await PacketClient.connect(b, { clientId: "p" }, mode);
      for (let i = 1; i <= 50; i++) {
        p.send({
          type: 3,
          topic: "cb/x",
          payload: text(String(i)),
          qos: 1,
          retain: false,
          dup: false,
          packetId: i,
        });
      }
      for (let i = 1; i <= 50; i++) {
        const m = await s.expect(3);
        assert.equal(str(m.payload), String(i));
        s.send({ type: 4, packetId: m.packetId! });
      }
      for (let i = 1; i <= 50; i++) assert.equal((await p.expect(4)).packetId, i);
    });

    test("a malformed packet closes the connection; the peer's close ends the session", async () => {
      const b = newBroker();
      const { client } = await PacketClient.connect(b, { clientId: "bad" }, mode);
      client.sendRaw(new Uint8Array([0x00, 0x00]));
      await client.expectClosed();
      const { client: c2 } = await PacketClient.connect(b, { clientId: "gone" }, mode);
      c2.drop();
      await c2.expectClosed();
      assert.equal(b.connectedCount, 0);
    });

    test("authentication that waits pauses the packets behind CONNECT", async () => {
      const b = newBroker({
        hooks: [{
          authenticate: () => new Promise((r) => setTimeout(() => r({ ok: true as const }), 30)),
        }],
      });
      const c = new PacketClient(b, 4, mode);
      c.send({
        type: 1,
        protocolName: "MQTT",
        protocolVersion: 4,
        clean: true,
        keepAlive: 0,
        clientId: "slow",
      });
      c.send({ type: 12 }); // in the same tick as CONNECT
      assert.equal((await c.expect(2)).reasonCode, 0);
      await c.expect(13);
    });
  });
}
