// One client never hurts the others: a connection whose read brought a large burst of packets
// handles it a budget at a time, and the other connections are served in between. The budget is
// tight while a subscriber waits on its acknowledgements, a read's worth otherwise.
import { afterEach, describe, test } from "node:test";
import assert from "node:assert/strict";
import { closeAll, newBroker, PacketClient, text } from "./helpers/packet_client.ts";
import { encode } from "../src/mqtt/encoder.ts";
import {
  BYTES_PER_TURN,
  IO_BYTES_PER_TURN,
  IO_PACKETS_PER_TURN,
  LOOSE_BYTES_PER_TURN,
  LOOSE_MAX_PACKETS,
  LOOSE_PACKETS_PER_TURN,
  PACKETS_PER_TURN,
  subscriberWaits,
  TIGHT_MS,
  turnBudget,
  useIoTurn,
} from "../src/broker/input_turns.ts";
import type { Broker } from "../src/broker/broker.ts";

afterEach(closeAll);

/** `count` QoS 1 PUBLISHes of `size` payload bytes, ids 1..count, as one chunk. */
function burst(count: number, size = 0): Uint8Array {
  const parts: Uint8Array[] = [];
  for (let i = 1; i <= count; i++) {
    const payload = new Uint8Array(size + 8);
    payload.set(text(String(i)));
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

/** A QoS 1 subscriber whose window (1) is full and that never acknowledges: it waits. */
async function waitingSubscriber(b: Broker): Promise<void> {
  const { client: s } = await PacketClient.connect(b, { clientId: "waiting" });
  s.send({ type: 8, packetId: 1, subscriptions: [{ topicFilter: "w/#", qos: 1 }] });
  await s.expect(9);
  const { client: p } = await PacketClient.connect(b, { clientId: "to-waiting" });
  for (let id = 1; id <= 2; id++) {
    p.send({
      type: 3,
      topic: "w/x",
      payload: text("m"),
      qos: 1,
      retain: false,
      dup: false,
      packetId: id,
    });
    await p.expect(4);
  }
}

/** Sends `chunk` on one connection and a PINGREQ on another in the same turn. */
async function floodAndPing(b: Broker, chunk: Uint8Array, count: number, mode: string) {
  const m = mode as "callbacks-sync" | "streams";
  const { client: flood } = await PacketClient.connect(b, { clientId: "flood" }, m);
  const { client: other } = await PacketClient.connect(b, { clientId: "other" }, m);
  flood.sendRaw(chunk);
  other.send({ type: 12 });
  await other.expect(13);
  // Answered before the burst was: the flood's later PUBACKs come on later turns.
  const acked = flood.pending().length;
  assert.ok(acked < count, `PINGRESP came after all ${count} PUBACKs of the burst`);
  // Nothing of the burst is lost or reordered.
  for (let i = 1; i <= count; i++) assert.equal((await flood.expect(4)).packetId, i);
}

// The loose cases first: a tight case leaves turns tight for TIGHT_MS in this process.
for (const mode of ["callbacks-sync", "streams"] as const) {
  describe(`input turns, nobody waiting (${mode})`, () => {
    test("a burst of several reads' worth does not keep another connection's PINGREQ waiting", async () => {
      const count = 5 * LOOSE_PACKETS_PER_TURN;
      const chunk = burst(count, 1024);
      assert.ok(chunk.length > 4 * LOOSE_BYTES_PER_TURN, "several turns even when loose");
      await floodAndPing(newBroker(), chunk, count, mode);
    });

    test("a burst of tiny packets within a read's bytes still takes several turns", async () => {
      const count = 2 * LOOSE_MAX_PACKETS + 100;
      const chunk = burst(count);
      assert.ok(chunk.length < LOOSE_BYTES_PER_TURN, "one turn by bytes alone");
      await floodAndPing(newBroker(), chunk, count, mode);
    });
  });
}

for (const mode of ["callbacks-sync", "streams"] as const) {
  describe(`input turns, a subscriber waiting (${mode})`, () => {
    test("turns are tight: a small burst takes several", async () => {
      const count = 400;
      const chunk = burst(count);
      assert.ok(chunk.length > 4 * BYTES_PER_TURN && count > 4 * PACKETS_PER_TURN, "several turns");
      assert.ok(chunk.length < LOOSE_BYTES_PER_TURN && count < LOOSE_MAX_PACKETS, "one if loose");
      const b = newBroker({ maxInflight: 1 });
      await waitingSubscriber(b);
      await floodAndPing(b, chunk, count, mode);
    });
  });
}

test("turns are tight from a subscriber's wait until TIGHT_MS after the last one", () => {
  const now = Date.now();
  subscriberWaits();
  assert.deepEqual(turnBudget(now), {
    bytes: BYTES_PER_TURN,
    packets: PACKETS_PER_TURN,
    maxPackets: Infinity,
  });
  assert.equal(turnBudget(now + TIGHT_MS - 1).bytes, BYTES_PER_TURN);
  const loose = {
    bytes: LOOSE_BYTES_PER_TURN,
    packets: LOOSE_PACKETS_PER_TURN,
    maxPackets: LOOSE_MAX_PACKETS,
  };
  assert.deepEqual(turnBudget(now + TIGHT_MS), loose);
  // Another wait tightens them again.
  subscriberWaits();
  assert.equal(turnBudget(now + TIGHT_MS).bytes, BYTES_PER_TURN);
});

test("tight turns that end with a poll (Deno's ioTurn) take half the budget", () => {
  const now = Date.now();
  subscriberWaits();
  useIoTurn((f) => setTimeout(f));
  try {
    assert.deepEqual(turnBudget(now), {
      bytes: IO_BYTES_PER_TURN,
      packets: IO_PACKETS_PER_TURN,
      maxPackets: Infinity,
    });
    assert.ok(IO_BYTES_PER_TURN < BYTES_PER_TURN && IO_PACKETS_PER_TURN < PACKETS_PER_TURN);
    assert.equal(turnBudget(now + TIGHT_MS).bytes, LOOSE_BYTES_PER_TURN, "loose turns as before");
  } finally {
    useIoTurn(undefined);
  }
  subscriberWaits();
  assert.equal(turnBudget(now + TIGHT_MS).bytes, BYTES_PER_TURN, "without ioTurn (Bun)");
});

test("an ioTurn that falls back to setImmediate (no poll: no listener) keeps the wider budget", () => {
  const now = Date.now();
  let polls = false;
  useIoTurn((f) => setTimeout(f), () => polls);
  try {
    subscriberWaits();
    assert.equal(turnBudget(now).bytes, BYTES_PER_TURN);
    polls = true; // a listener opened the pairs
    assert.equal(turnBudget(now).bytes, IO_BYTES_PER_TURN);
  } finally {
    useIoTurn(undefined);
  }
});
