// One client never hurts the others: a connection whose read brought a large burst of packets
// handles it a budget at a time, and the other connections are served in between.
import { afterEach, describe, test } from "node:test";
import assert from "node:assert/strict";
import { closeAll, newBroker, PacketClient, text } from "./helpers/packet_client.ts";
import { encode } from "../src/mqtt/encoder.ts";
import { BYTES_PER_TURN, PACKETS_PER_TURN } from "../src/broker/input_turns.ts";

afterEach(closeAll);

/** `count` QoS 1 PUBLISHes, ids 1..count, as one chunk. */
function burst(count: number): Uint8Array {
  const parts: Uint8Array[] = [];
  for (let i = 1; i <= count; i++) {
    const payload = text(String(i));
    parts.push(
      encode(
        { type: 3, topic: "flood/x", payload, qos: 1, retain: false, dup: false, packetId: i },
        4,
      ),
    );
  }
  const all = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    all.set(p, at);
    at += p.length;
  }
  return all;
}

for (const mode of ["callbacks-sync", "streams"] as const) {
  describe(`input turns (${mode})`, () => {
    test("a burst in one chunk does not keep another connection's PINGREQ waiting", async () => {
      const count = 400;
      const chunk = burst(count);
      assert.ok(chunk.length > 4 * BYTES_PER_TURN && count > 4 * PACKETS_PER_TURN, "several turns");
      const b = newBroker();
      const { client: flood } = await PacketClient.connect(b, { clientId: "flood" }, mode);
      const { client: other } = await PacketClient.connect(b, { clientId: "other" }, mode);
      // Both arrive in the same turn of the event loop.
      flood.sendRaw(chunk);
      other.send({ type: 12 });
      await other.expect(13);
      // Answered before the burst was: the flood's later PUBACKs come on later turns.
      const acked = flood.pending().length;
      assert.ok(acked < count, `PINGRESP came after all ${count} PUBACKs of the burst`);
      // Nothing of the burst is lost or reordered.
      for (let i = 1; i <= count; i++) assert.equal((await flood.expect(4)).packetId, i);
    });
  });
}
