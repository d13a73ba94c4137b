import { test } from "node:test";
import assert from "node:assert/strict";
import { decodeBusFrame, encodeBusMessage, FrameWriter } from "./codec.ts";
import { RangePublish } from "../mqtt/publish_range.ts";

test("codec: payloads still in their socket chunk, UTF-8 and long names, ack counts", () => {
  const chunk = new Uint8Array(4096).map((_, i) => i % 251);
  const w = new FrameWriter("ñode-1");
  const cases = [
    { topic: "a/b", from: "c1", start: 10, n: 300 }, // copied byte by byte
    { topic: "ä/ö/€", from: "klient-ü", start: 1000, n: 2000 }, // copied through a view
    { topic: "t/" + "x".repeat(100), from: "y".repeat(70), start: 0, n: 0 },
  ];
  for (const c of cases) {
    const message = new RangePublish(c.topic, 1, false, false, 1, undefined, chunk, c.start, c.n);
    message.from = c.from;
    w.add({ kind: "publish", message, ack: 7 });
  }
  w.add({ kind: "ack", ids: [7, 2 ** 48 + 1], ok: true, counts: [3, 1] });
  const d = decodeBusFrame(w.bytes())!;
  assert.equal(d.from, "ñode-1");
  cases.forEach((c, i) => {
    const m = d.msgs[i];
    assert.ok(m.kind === "publish");
    assert.equal(m.message.topic, c.topic);
    assert.equal(m.message.from, c.from);
    assert.deepEqual(m.message.payload, chunk.slice(c.start, c.start + c.n));
    assert.equal(m.ack, 7);
  });
  assert.deepEqual(d.msgs[3], { kind: "ack", ids: [7, 2 ** 48 + 1], ok: true, counts: [3, 1] });
  const plain = decodeBusFrame(encodeBusMessage("n", { kind: "ack", ids: [5], ok: false }))!;
  assert.deepEqual(plain.msgs, [{ kind: "ack", ids: [5], ok: false }]);
});

test("codec: many publishers' client ids (more than the table of recent ones holds), twice", () => {
  const w = new FrameWriter("n");
  const ids = Array.from({ length: 3000 }, (_, i) => `pub-${i}`);
  for (const from of [...ids, ...ids]) {
    const message = {
      topic: "t",
      payload: new Uint8Array(1),
      qos: 1 as const,
      retain: false,
      from,
    };
    w.add({ kind: "publish", message });
  }
  const got = decodeBusFrame(w.bytes())!.msgs.map((m) => m.kind === "publish" && m.message.from);
  assert.deepEqual(got, [...ids, ...ids]);
});

test("codec: a session's move (handed, adopted, sync, synced) and a shared message round-trip", () => {
  const message = {
    topic: "h/t",
    payload: new Uint8Array([1, 2, 3]),
    qos: 2 as const,
    retain: true,
  };
  const msgs = [
    {
      kind: "handed",
      clientId: "x",
      message,
      share: "g\0h/#",
      origin: "001:42",
      stored: "0i43gt9cvls.001",
      ack: 9,
    },
    { kind: "handed", clientId: "y", message: { ...message, from: "p" }, ack: 10 },
    { kind: "adopted", clientId: "x", epoch: 7 },
    { kind: "sync", id: 3 },
    { kind: "synced", id: 3 },
    { kind: "share", message, share: "g\0s/+" },
    { kind: "share", message, share: "g\0s/+", passedOn: true },
  ] as const;
  const w = new FrameWriter("n");
  for (const m of msgs) w.add(m);
  const got = decodeBusFrame(w.bytes())!.msgs;
  assert.deepEqual(got[0], { ...msgs[0], message: { ...message } });
  assert.deepEqual(got[1], {
    ...msgs[1],
    share: undefined,
    origin: undefined,
    stored: undefined,
    message: { ...message, from: "p" },
  });
  assert.deepEqual(got.slice(2, 5), msgs.slice(2, 5));
  assert.deepEqual(got[5], { ...msgs[5], message: { ...message } });
});
