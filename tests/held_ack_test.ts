// persistPublish: a hook that keeps messages may hold their PUBACK/PUBREC ("acknowledged means kept").
import { afterEach, describe, test } from "node:test";
import assert from "node:assert/strict";
import {
  closeAll,
  newBroker,
  PacketClient,
  testBrokerOptions,
  text,
} from "./helpers/packet_client.ts";
import { Broker } from "../src/broker/broker.ts";
import type { BrokerHooks } from "../src/broker/hooks.ts";
import { MemoryStore } from "../src/store/memory.ts";
import type { MessageData, RetainedWrite } from "../src/store/types.ts";
import type { Message } from "../src/broker/message.ts";
import type { Packet } from "../src/mqtt/packet.ts";

afterEach(closeAll);

/** Holds every message on `held/...` until release() or refuse(). */
function holdingHook() {
  const waiting: { resolve: () => void; reject: (e: Error) => void }[] = [];
  const seen: Message[] = [];
  const hooks: BrokerHooks = {
    persistPublish(m) {
      seen.push(m);
      if (!m.topic.startsWith("held/")) return;
      return new Promise<void>((resolve, reject) => waiting.push({ resolve, reject }));
    },
  };
  return {
    hooks,
    seen,
    release: () => waiting.splice(0).forEach((w) => w.resolve()),
    refuse: () => waiting.splice(0).forEach((w) => w.reject(new Error("store down"))),
  };
}

const pub = (topic: string, qos: 0 | 1 | 2, packetId?: number): Packet => ({
  type: 3,
  topic,
  payload: text(topic),
  qos,
  retain: false,
  dup: false,
  packetId,
});

describe("persistPublish holds acknowledgements", () => {
  test("routed at once; PUBACK/PUBREC wait for the hook, in the order received", async () => {
    const h = holdingHook();
    const b = newBroker({ hooks: [h.hooks] });
    const { client: s } = await PacketClient.connect(b, { clientId: "s" });
    s.send({ type: 8, packetId: 1, subscriptions: [{ topicFilter: "#", qos: 0 }] });
    await s.expect(9);
    const { client: p } = await PacketClient.connect(b, { clientId: "p" });
    p.send(pub("held/1", 1, 1));
    p.send(pub("free", 1, 2)); // not held itself, but acknowledged after held/1
    p.send(pub("held/2", 2, 3));
    for (const t of ["held/1", "free", "held/2"]) assert.equal((await s.expect(3)).topic, t);
    await p.expectNothing(150);
    h.release();
    assert.equal((await p.expect(4)).packetId, 1);
    assert.equal((await p.expect(4)).packetId, 2);
    assert.equal((await p.expect(5)).packetId, 3);
    // A QoS 2 resend of a message already taken is not routed again [MQTT-4.3.3-2].
    p.send({ ...pub("held/2", 2, 3), dup: true } as Packet);
    assert.equal((await p.expect(5)).packetId, 3);
    await s.expectNothing(100);
    assert.equal(h.seen.filter((m) => m.topic === "held/2").length, 1);
  });

  test("a QoS 2 resend after a reconnect waits for the held first copy, routed once", async () => {
    const h = holdingHook();
    const b = newBroker({ hooks: [h.hooks] });
    const { client: s } = await PacketClient.connect(b, { clientId: "s2" });
    s.send({ type: 8, packetId: 1, subscriptions: [{ topicFilter: "held/#", qos: 0 }] });
    await s.expect(9);
    const first = await PacketClient.connect(b, { clientId: "q2", clean: false });
    first.client.send(pub("held/q2", 2, 5));
    assert.equal((await s.expect(3)).topic, "held/q2");
    await first.client.expectNothing(100);
    first.client.drop();
    await first.client.expectClosed();
    const { client: again } = await PacketClient.connect(b, { clientId: "q2", clean: false });
    again.send({ ...pub("held/q2", 2, 5), dup: true } as Packet);
    await again.expectNothing(150); // Kafka (or the store) has not taken it yet
    h.release();
    assert.equal((await again.expect(5)).packetId, 5);
    await s.expectNothing(100);
    assert.equal(h.seen.length, 1);
  });

  test("refused after the publisher left: its QoS 2 resend is taken as new, not acknowledged", async () => {
    const h = holdingHook();
    const b = newBroker({ hooks: [h.hooks] });
    const first = await PacketClient.connect(b, { clientId: "r2", clean: false });
    first.client.send(pub("held/r2", 2, 9));
    await first.client.expectNothing(100);
    first.client.drop();
    await first.client.expectClosed();
    h.refuse(); // the store never kept it, and nobody was told
    await new Promise((r) => setTimeout(r, 50));
    const { client: again } = await PacketClient.connect(b, { clientId: "r2", clean: false });
    again.send({ ...pub("held/r2", 2, 9), dup: true } as Packet);
    await again.expectNothing(150); // held again, not a PUBREC for a message nobody kept
    assert.equal(h.seen.length, 2);
    h.release();
    assert.equal((await again.expect(5)).packetId, 9);
  });

  test("one promise holding two publishers: each sends its own, after its earlier ones", async () => {
    // The shared wait of a cluster turn: one promise for every publisher read in that turn.
    let shared: { resolve: () => void; promise: Promise<void> } | undefined;
    const own: (() => void)[] = [];
    const b = newBroker({
      hooks: [{
        persistPublish(m) {
          if (m.topic === "own") return new Promise<void>((r) => own.push(r));
          if (!shared) {
            let resolve!: () => void;
            const promise = new Promise<void>((r) => resolve = r);
            shared = { resolve, promise };
          }
          return shared.promise;
        },
      }],
    });
    const { client: p1 } = await PacketClient.connect(b, { clientId: "p1" });
    const { client: p2 } = await PacketClient.connect(b, { clientId: "p2" });
    p1.send(pub("own", 1, 1)); // held by a promise of its own, settled last
    p1.send(pub("t", 1, 2));
    p2.send(pub("t", 1, 3));
    p2.send(pub("t", 2, 4));
    await p1.expectNothing(100);
    shared!.resolve();
    assert.equal((await p2.expect(4)).packetId, 3);
    assert.equal((await p2.expect(5)).packetId, 4);
    await p1.expectNothing(100); // packet 2 waits for packet 1's acknowledgement
    own[0]();
    assert.equal((await p1.expect(4)).packetId, 1);
    assert.equal((await p1.expect(4)).packetId, 2);
    // The promise settled: a message it holds now is acknowledged too.
    p2.send(pub("t", 1, 5));
    assert.equal((await p2.expect(4)).packetId, 5);
  });

  test("refused: 5.0 gets reason 0x80, 3.1.1 is disconnected to send it again", async () => {
    const h = holdingHook();
    const b = newBroker({ hooks: [h.hooks] });
    const { client: p5 } = await PacketClient.connect(b, { clientId: "p5", protocolVersion: 5 });
    p5.send(pub("held/a", 1, 1));
    p5.send(pub("held/b", 2, 2));
    await p5.expectNothing(100);
    h.refuse();
    assert.equal((await p5.expect(4)).reasonCode, 0x80);
    assert.equal((await p5.expect(5)).reasonCode, 0x80);
    assert.equal(p5.closed, false);
    const { client: p4 } = await PacketClient.connect(b, { clientId: "p4" });
    p4.send(pub("held/c", 1, 1));
    await p4.expectNothing(100);
    h.refuse();
    await p4.expectClosed();
  });

  test("two hooks refusing a will (nobody to tell) crash nothing", async () => {
    const h1 = holdingHook();
    const h2 = holdingHook();
    const b = newBroker({ hooks: [h1.hooks, h2.hooks] });
    const { client } = await PacketClient.connect(b, {
      clientId: "w",
      will: { topic: "held/will", payload: text("bye"), qos: 1, retain: false },
    });
    client.drop(); // the will goes through both hooks; nobody takes its held acknowledgement
    await client.expectClosed();
    assert.equal(h1.seen.length, 1);
    h1.refuse();
    h2.refuse();
    await new Promise((r) => setTimeout(r, 100)); // an unhandled rejection would fail the run
    const { client: again } = await PacketClient.connect(b, { clientId: "after" });
    again.send(pub("free", 1, 1));
    assert.equal((await again.expect(4)).packetId, 1);
  });

  test("the hook sees the whole message: 5.0 properties, QoS, publisher", async () => {
    const h = holdingHook();
    const b = newBroker({ hooks: [h.hooks] });
    const { client } = await PacketClient.connect(b, { clientId: "c5", protocolVersion: 5 });
    client.send({
      ...pub("free", 1, 7),
      properties: { contentType: "text/plain", userProperties: [["k", "v"]] },
    } as Packet);
    assert.equal((await client.expect(4)).packetId, 7);
    const m = h.seen[0];
    assert.equal(m.from, "c5");
    assert.equal(m.qos, 1);
    assert.equal(m.properties?.contentType, "text/plain");
    assert.deepEqual(m.properties?.userProperties, [["k", "v"]]);
  });

  test("a held retained QoS 1 keeps its place: the next held PUBACK does not overtake it", async () => {
    // A retained message is routed after its store write (async with SQLite or Redis).
    class SlowRetained extends MemoryStore {
      override setRetained(topic: string, m: MessageData | undefined): Promise<RetainedWrite> {
        return new Promise((r) => setTimeout(() => r(super.setRetained(topic, m)), 5));
      }
    }
    const h = holdingHook();
    const b = new Broker(testBrokerOptions({ hooks: [h.hooks] }), new SlowRetained());
    try {
      const { client: p } = await PacketClient.connect(b, {
        clientId: "order",
        protocolVersion: 5,
      });
      p.send({ ...pub("held/r", 1, 1), retain: true } as Packet);
      p.send(pub("held/t", 1, 2));
      await p.expectNothing(100);
      h.release();
      // [MQTT-4.6.0-2]: PUBACKs in the order the PUBLISH packets came in.
      assert.equal((await p.expect(4)).packetId, 1);
      assert.equal((await p.expect(4)).packetId, 2);
    } finally {
      await b.close();
    }
  });
});
