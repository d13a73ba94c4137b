// Every way a connection reaches the broker (the callback path with sync or async writes, and a
// Web-stream pair adapted by connFromStreams) carries the same protocol.
import { afterEach, describe, test } from "node:test";
import assert from "node:assert/strict";
import { closeAll, newBroker, PacketClient, str, text } from "./helpers/packet_client.ts";
import { encode } from "../src/mqtt/encoder.ts";
import type { ConnCallbacks } from "../src/broker/conn.ts";

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

// Deno calls the data handler of every socket ready in a poll before it runs any microtask, so a
// delivery flushed on a microtask waited for the other sockets' input (S4-rate200).
test("a delivery is written before the data handler of its PUBLISH returns", async () => {
  const b = newBroker();
  const { client: s } = await PacketClient.connect(b, { clientId: "s" });
  s.send({ type: 8, packetId: 1, subscriptions: [{ topicFilter: "now/#", qos: 1 }] });
  await s.expect(9);
  let cb!: ConnCallbacks;
  const written: number[][] = [];
  b.handleConnection({
    remoteAddr: "127.0.0.1:50001",
    close() {},
    start: (callbacks) => void (cb = callbacks),
    write: (bytes, length = bytes.length) => void written.push([...bytes.subarray(0, length)]),
  });
  const connect = { type: 1, protocolName: "MQTT", protocolVersion: 4, clean: true } as const;
  await cb.data(encode({ ...connect, keepAlive: 0, clientId: "p" }, 4));
  while (written.length === 0) await new Promise((r) => setTimeout(r, 5));
  written.length = 0;
  const publish = encode({
    type: 3,
    topic: "now/x",
    payload: text("m"),
    qos: 1,
    retain: false,
    dup: false,
    packetId: 7,
  }, 4);
  const handled = cb.data(publish);
  // Checked synchronously, before any microtask could run.
  assert.equal(s.pending().length, 1, "the subscriber's PUBLISH is written");
  await handled;
  // The publisher's own PUBACK goes out on the microtask (shared with its other replies).
  while (written.length === 0) await new Promise((r) => setTimeout(r, 5));
  assert.deepEqual(written[0], [0x40, 0x02, 0x00, 0x07]);
});
