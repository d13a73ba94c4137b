// One client never hurts the others: a subscriber that cannot keep up fills its own bounded queue
// and loses its own excess (counted); publishers are acknowledged at their own pace.
import { afterEach, describe, test } from "node:test";
import assert from "node:assert/strict";
import { closeAll, newBroker, PacketClient, str, text } from "./helpers/packet_client.ts";
import type { BrokerHooks } from "../src/broker/hooks.ts";
import { sysTopics } from "../src/sys/sys_topics.ts";

afterEach(closeAll);

function publishQos1(p: PacketClient, topic: string, from: number, count: number): void {
  for (let i = from; i < from + count; i++) {
    p.send({
      type: 3,
      topic,
      payload: text(String(i)),
      qos: 1,
      retain: false,
      dup: false,
      packetId: i,
    });
  }
}

describe("slow subscribers", () => {
  test("a QoS 1 subscriber on # that never acknowledges does not slow a QoS 1 publisher", async () => {
    const inflight = 10, queued = 50, total = 3000;
    const hooks: BrokerHooks[] = [];
    const b = newBroker({ maxInflight: inflight, maxQueuedMessages: queued, hooks });
    const sys = sysTopics({ broker: b, enable: true, brokerId: 1, version: "t", interval: 60_000 });
    hooks.push(sys.hooks);
    const { client: s } = await PacketClient.connect(b, { clientId: "stuck" });
    s.send({ type: 8, packetId: 1, subscriptions: [{ topicFilter: "#", qos: 1 }] });
    await s.expect(9);
    const { client: p } = await PacketClient.connect(b, { clientId: "fast" });
    publishQos1(p, "f/1", 1, total);
    // Every PUBACK, promptly: the publisher is never paused for the subscriber (a generous
    // per-packet limit; before the fix the publisher waited 1 s per stalled round).
    for (let i = 1; i <= total; i++) {
      const ack = await p.expect(4, 500);
      assert.equal(ack.packetId, i);
    }
    // The subscriber holds exactly its window and its queue; the rest is its own loss.
    const lost = total - inflight - queued;
    assert.equal(b.sessions.get("stuck")!.dropped, lost);
    assert.equal(b.stats.dropped.queueFull, lost);
    // $SYS shows the same count.
    const { client: watcher } = await PacketClient.connect(b, { clientId: "watcher" });
    watcher.send({
      type: 8,
      packetId: 1,
      subscriptions: [{ topicFilter: "$SYS/broker/droppedMsg", qos: 0 }],
    });
    await watcher.expect(9);
    const answer = JSON.parse(str((await watcher.expect(3)).payload));
    assert.equal(answer.droppedMsg.queueFull, lost);
    sys.stop?.();
    // What it keeps arrives in order once it acknowledges: the first inflight + queued messages.
    for (let i = 1; i <= inflight + queued; i++) {
      const m = await s.expect(3);
      assert.equal(str(m.payload), String(i));
      s.send({ type: 4, packetId: m.packetId! });
    }
    await s.expectNothing(100);
  });

  test("a slow subscriber loses only its own messages: another subscriber gets everything", async () => {
    const total = 500;
    const b = newBroker({ maxInflight: 5, maxQueuedMessages: 20 });
    const { client: slow } = await PacketClient.connect(b, { clientId: "slow" });
    slow.send({ type: 8, packetId: 1, subscriptions: [{ topicFilter: "t/#", qos: 1 }] });
    await slow.expect(9);
    const { client: good } = await PacketClient.connect(b, { clientId: "good" });
    good.send({ type: 8, packetId: 1, subscriptions: [{ topicFilter: "t/#", qos: 1 }] });
    await good.expect(9);
    const { client: p } = await PacketClient.connect(b, { clientId: "pub" });
    // Bursts within the good subscriber's window + queue, while the slow one never reads.
    for (let from = 1; from <= total; from += 20) {
      publishQos1(p, "t/x", from, 20);
      for (let i = from; i < from + 20; i++) assert.equal((await p.expect(4)).packetId, i);
      for (let i = from; i < from + 20; i++) {
        const m = await good.expect(3);
        assert.equal(str(m.payload), String(i));
        good.send({ type: 4, packetId: m.packetId! });
      }
    }
    assert.equal(b.sessions.get("good")!.dropped, 0);
    assert.equal(b.sessions.get("slow")!.dropped, total - 25);
  });

  test("drops are logged naming the client, escaped, at most once per interval", async () => {
    const lines: string[] = [];
    const b = newBroker({ maxInflight: 1, maxQueuedMessages: 1, log: (l) => lines.push(l) });
    const id = "evil\n[fake] line\u001b[31m";
    const { client: s } = await PacketClient.connect(b, { clientId: id });
    s.send({ type: 8, packetId: 1, subscriptions: [{ topicFilter: "d", qos: 1 }] });
    await s.expect(9);
    const { client: p } = await PacketClient.connect(b, { clientId: "pub" });
    publishQos1(p, "d", 1, 100);
    for (let i = 1; i <= 100; i++) await p.expect(4);
    const drops = lines.filter((l) => l.includes("queue full"));
    assert.equal(drops.length, 1, lines.join("\n"));
    assert.ok(!drops[0].includes("\n") && !drops[0].includes("\u001b"), drops[0]);
    assert.match(drops[0], /evil\\n\[fake\] line/);
  });
});
