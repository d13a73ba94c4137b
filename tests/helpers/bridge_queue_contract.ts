/**
 * The contract every BridgeQueue (src/bridge/mqtt_queue.ts) passes: FIFO by
 * sequence number, reads forward from a cursor, removal in any order, the
 * bound drops the oldest and says how many. Run by each implementation's test
 * file with a factory (`reopen` also checks a durable queue across a restart).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import type { BridgeQueue, OutboundMessage } from "../../src/bridge/mqtt_queue.ts";

export interface QueueFactory {
  /** A reason to skip (a peer missing and not required), as node:test takes it. */
  skip?: string | false;
  /** A fresh, empty queue bounded by `max`. */
  make(max: number): Promise<BridgeQueue> | BridgeQueue;
  /** Close `q` and open the same queue again (durable implementations only). */
  reopen?(q: BridgeQueue, max: number): Promise<BridgeQueue>;
}

const msg = (i: number, qos: 0 | 1 | 2 = 1): OutboundMessage => ({
  topic: `t/${i}`,
  payload: new TextEncoder().encode(`p${i}`),
  qos,
  retain: i % 2 === 0,
});

const text = (p: Uint8Array) => new TextDecoder().decode(p);

export function bridgeQueueContract(name: string, f: QueueFactory): void {
  const opts = { skip: f.skip ?? false, timeout: 30_000 };
  test(`${name}: FIFO, peek forward from a cursor, messages kept intact`, opts, async () => {
    const q = await f.make(100);
    for (let i = 0; i < 5; i++) assert.equal(await q.push(msg(i, (i % 3) as 0 | 1 | 2)), 0);
    assert.equal(q.size(), 5);
    const all = await q.peek(0, 10);
    assert.deepEqual(all.map((m) => m.topic), ["t/0", "t/1", "t/2", "t/3", "t/4"]);
    assert.deepEqual(all.map((m) => m.qos), [0, 1, 2, 0, 1]);
    assert.deepEqual(all.map((m) => m.retain), [true, false, true, false, true]);
    assert.equal(text(all[3].payload), "p3");
    for (let i = 1; i < all.length; i++) assert.ok(all[i].seq > all[i - 1].seq);
    const after = await q.peek(all[1].seq, 2);
    assert.deepEqual(after.map((m) => m.topic), ["t/2", "t/3"]);
    await q.close();
  });

  test(`${name}: removal in any order; removed messages are never read again`, opts, async () => {
    const q = await f.make(100);
    for (let i = 0; i < 6; i++) await q.push(msg(i));
    const all = await q.peek(0, 10);
    await q.remove(all[2].seq);
    await q.remove(all[0].seq);
    await q.remove(all[0].seq); // twice: nothing happens
    assert.equal(q.size(), 4);
    assert.deepEqual((await q.peek(0, 10)).map((m) => m.topic), ["t/1", "t/3", "t/4", "t/5"]);
    for (const m of all) await q.remove(m.seq);
    assert.equal(q.size(), 0);
    assert.deepEqual(await q.peek(0, 10), []);
    await q.push(msg(9));
    const [next] = await q.peek(0, 10);
    assert.ok(next.seq > all[5].seq, "sequence numbers are never reused");
    await q.close();
  });

  test(`${name}: reading on from a cursor also finds what was pushed since`, opts, async () => {
    const q = await f.make(100);
    for (let i = 0; i < 3; i++) await q.push(msg(i));
    const [first] = await q.peek(0, 1);
    await q.push(msg(3));
    const [second] = await q.peek(first.seq, 1);
    await q.push(msg(4));
    const rest = await q.peek(second.seq, 10);
    assert.deepEqual([first, second, ...rest].map((m) => m.topic), [
      "t/0",
      "t/1",
      "t/2",
      "t/3",
      "t/4",
    ]);
    await q.close();
  });

  test(`${name}: past the bound the oldest are dropped and counted`, opts, async () => {
    const q = await f.make(3);
    let dropped = 0;
    for (let i = 0; i < 5; i++) dropped += await q.push(msg(i));
    assert.equal(dropped, 2);
    assert.equal(q.size(), 3);
    assert.deepEqual((await q.peek(0, 10)).map((m) => m.topic), ["t/2", "t/3", "t/4"]);
    await q.close();
  });

  test(`${name}: in-flight records; completing one removes its message too`, opts, async () => {
    const q = await f.make(100);
    for (let i = 0; i < 3; i++) await q.push(msg(i));
    const [a, b] = await q.peek(0, 2);
    await q.putInflight({ messageId: 7, seq: a.seq, released: false });
    await q.putInflight({ messageId: 9, seq: b.seq, released: false });
    await q.putInflight({ messageId: 7, seq: a.seq, released: true }); // PUBREC came
    const byId = (rs: { messageId: number }[]) => rs.sort((x, y) => x.messageId - y.messageId);
    assert.deepEqual(byId(await q.inflight()), [
      { messageId: 7, seq: a.seq, released: true },
      { messageId: 9, seq: b.seq, released: false },
    ]);
    await q.complete(7);
    await q.complete(7); // twice: nothing happens
    await q.complete(123); // unknown: nothing happens
    assert.equal(q.size(), 2);
    assert.deepEqual((await q.peek(0, 10)).map((m) => m.topic), ["t/1", "t/2"]);
    assert.deepEqual(await q.inflight(), [{ messageId: 9, seq: b.seq, released: false }]);
    await q.close();
  });

  test(`${name}: incoming QoS 2 records are kept, replaced and forgotten`, opts, async () => {
    const q = await f.make(10);
    const rec = (id: number, p: string) => ({
      messageId: id,
      topic: `in/${id}`,
      payload: new TextEncoder().encode(p),
      qos: 2 as const,
      retain: id === 4,
    });
    await q.putIncoming(rec(3, "a"));
    await q.putIncoming(rec(4, "b"));
    await q.putIncoming(rec(3, "c")); // the upstream sent 3 again (DUP): one record
    const byId = async () =>
      (await q.incoming()).sort((x, y) => x.messageId - y.messageId)
        .map((r) => [r.messageId, r.topic, text(r.payload), r.qos, r.retain]);
    assert.deepEqual(await byId(), [[3, "in/3", "c", 2, false], [4, "in/4", "b", 2, true]]);
    await q.delIncoming(3);
    await q.delIncoming(3); // twice: nothing happens
    assert.deepEqual(await byId(), [[4, "in/4", "b", 2, true]]);
    assert.equal(q.size(), 0, "incoming records are not queued outbound");
    await q.close();
  });

  if (f.reopen) {
    const reopen = f.reopen;
    test(`${name}: incoming records survive a reopen`, opts, async () => {
      let q = await f.make(10);
      const payload = new TextEncoder().encode("kept");
      await q.putIncoming({ messageId: 9, topic: "in/x", payload, qos: 2, retain: false });
      q = await reopen(q, 10);
      const [r] = await q.incoming();
      assert.deepEqual([r.messageId, r.topic, text(r.payload)], [9, "in/x", "kept"]);
      await q.delIncoming(9);
      q = await reopen(q, 10);
      assert.deepEqual(await q.incoming(), []);
      await q.close();
    });

    test(`${name}: what is queued survives a close and reopen, in order`, opts, async () => {
      let q = await f.make(10);
      for (let i = 0; i < 4; i++) await q.push(msg(i));
      const [first] = await q.peek(0, 1);
      await q.remove(first.seq);
      q = await reopen(q, 10);
      assert.equal(q.size(), 3);
      const left = await q.peek(0, 10);
      assert.deepEqual(left.map((m) => m.topic), ["t/1", "t/2", "t/3"]);
      assert.equal(text(left[0].payload), "p1");
      await q.push(msg(7));
      const all = await q.peek(0, 10);
      assert.ok(all[3].seq > all[2].seq, "new messages go after the old ones");
      await q.close();
    });

    test(`${name}: in-flight records survive a reopen and complete there`, opts, async () => {
      let q = await f.make(10);
      for (let i = 0; i < 3; i++) await q.push(msg(i));
      const [a, b] = await q.peek(0, 2);
      await q.putInflight({ messageId: 1, seq: a.seq, released: true });
      await q.putInflight({ messageId: 2, seq: b.seq, released: false });
      q = await reopen(q, 10);
      const kept = (await q.inflight()).sort((x, y) => x.messageId - y.messageId);
      assert.deepEqual(kept, [
        { messageId: 1, seq: a.seq, released: true },
        { messageId: 2, seq: b.seq, released: false },
      ]);
      await q.complete(1);
      q = await reopen(q, 10);
      await q.inflight();
      assert.deepEqual((await q.peek(0, 10)).map((m) => m.topic), ["t/1", "t/2"]);
      assert.deepEqual((await q.inflight()).map((r) => r.messageId), [2]);
      await q.close();
    });

    test(`${name}: reopened with a smaller bound, the oldest are dropped`, opts, async () => {
      let q = await f.make(10);
      for (let i = 0; i < 6; i++) await q.push(msg(i));
      q = await reopen(q, 4);
      assert.equal(q.size(), 4);
      assert.deepEqual((await q.peek(0, 10)).map((m) => m.topic), ["t/2", "t/3", "t/4", "t/5"]);
      q = await reopen(q, 4);
      assert.deepEqual((await q.peek(0, 10)).map((m) => m.topic), ["t/2", "t/3", "t/4", "t/5"]);
      await q.close();
    });
  }
}
