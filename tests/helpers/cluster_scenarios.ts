/**
 * Cluster behaviours checked the same way whatever the bus (tests/cluster_test.ts
 * over Redis, tests/cluster_kafka_test.ts over Kafka): two nodes, MQTT.js
 * clients on each.
 */
import assert from "node:assert/strict";
import { type Clients, publish, sleep, subscribe, uid, withTimeout } from "./mqttjs.ts";

/** A share group with a member on each node gets each message exactly once. */
export async function shareGroupExactlyOnce(onA: Clients, onB: Clients): Promise<void> {
  const t = `sh/${uid()}`;
  const m1 = await onA.connect({ clientId: `m1-${uid()}` });
  const m2 = await onB.connect({ clientId: `m2-${uid()}` });
  await subscribe(m1.client, `$share/g/${t}`, { qos: 1 });
  await subscribe(m2.client, `$share/g/${t}`, { qos: 1 });
  const pub = await onA.connect({ clientId: `pub-${uid()}` });
  // Both nodes know both members once B's member has had a message published on A.
  const deadline = Date.now() + 30_000;
  while (m2.inbox.messages.length === 0 && Date.now() < deadline) {
    await publish(pub.client, t, "warm", { qos: 1 });
    await sleep(50);
  }
  assert.ok(m2.inbox.messages.length > 0, "the member on node B gets a share");
  const before1 = m1.inbox.messages.length;
  const before2 = m2.inbox.messages.length;
  const N = 200;
  for (let i = 0; i < N; i++) await publish(pub.client, t, `s${i}`, { qos: 1 });
  const all = () => [...m1.inbox.messages.slice(before1), ...m2.inbox.messages.slice(before2)];
  await withTimeout(
    (async () => {
      while (all().length < N) await sleep(50);
    })(),
    `${N} shared messages`,
    30_000,
  );
  await sleep(1_000); // a duplicate would show up now
  const payloads = all().map((m) => m.payload).sort();
  assert.equal(payloads.length, N, "no message twice");
  assert.equal(new Set(payloads).size, N);
  assert.ok(
    m1.inbox.messages.length > before1 && m2.inbox.messages.length > before2,
    "both nodes' members served",
  );
}

/** A connect on the other node takes the client id over (5.0: DISCONNECT 0x8E), both ways. */
export async function takeoverBothWays(onA: Clients, onB: Clients): Promise<void> {
  const id = `take-${uid()}`;
  const first = await onA.connect({ clientId: id, protocolVersion: 5 });
  const second = await onB.connect({ clientId: id, protocolVersion: 5 });
  await withTimeout(first.closed, "the connection on node A closed", 15_000);
  assert.equal(first.disconnects[0]?.reasonCode, 0x8e, "DISCONNECT Session taken over");
  const third = await onA.connect({ clientId: id, protocolVersion: 5 });
  await withTimeout(second.closed, "the connection on node B closed", 15_000);
  assert.equal(second.disconnects[0]?.reasonCode, 0x8e);
  assert.equal(third.client.connected, true);
}
