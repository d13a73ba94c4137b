/**
 * Share groups across nodes prefer members that are online: a node whose members of a group are
 * all offline (persistent sessions, disconnected) gets none of the group's turns while a member
 * elsewhere is online. Before, it got its turn (one message in two here), queued for a member that
 * may not come back for hours while an online member idled. With nobody online anywhere the
 * turns still go round the offline members, and each gets its messages when it comes back.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { untilRouted, useTwoNodes } from "./helpers/cluster.ts";
import { skipWithoutRedis } from "./helpers/redis_server.ts";
import { publish, sleep, subscribe, uid, withTimeout } from "./helpers/mqttjs.ts";
import type { Connected } from "./helpers/mqttjs.ts";

const skip = skipWithoutRedis();
const { onA, onB } = useTwoNodes(skip);

const N = 20;

/** Waits until `c` received `n` messages on `topic`; returns how many it has then. */
async function received(c: Connected, topic: string, n: number, ms = 10_000): Promise<number> {
  const count = () => c.inbox.messages.filter((m) => m.topic === topic).length;
  await withTimeout(
    (async () => {
      while (count() < n) await sleep(50);
    })(),
    `${n} messages on ${topic}`,
    ms,
  ).catch(() => {});
  return count();
}

describe("cluster: share groups and offline members", { skip }, () => {
  test("a node whose members are offline gets no turn while one is online elsewhere", {
    timeout: 90_000,
  }, async () => {
    const t = `online/${uid()}`;
    const group = `$share/g/${t}`;
    const awayId = `away-${uid()}`;
    // B's member: a persistent session, known to node A, then gone.
    const away = await onB.connect({ clientId: awayId, clean: false });
    await subscribe(away.client, group, { qos: 1 });
    const pub = await onA.connect({ clientId: `pub-${uid()}` });
    // A routes the group to B once B's member reached it (A has no member yet: all go to B).
    await untilRouted(pub.client, away.inbox, t);
    await away.client.endAsync();
    const here = await onA.connect({ clientId: `here-${uid()}` });
    await subscribe(here.client, group, { qos: 1 });
    await sleep(1_000); // (the offline change travels through Redis)
    for (let i = 0; i < N; i++) await publish(pub.client, t, `m${i}`, { qos: 1 });
    assert.equal(await received(here, t, N), N, "every message to the online member on A");
    // And none waited on B for the member that was away.
    const back = await onB.connect({ clientId: awayId, clean: false });
    assert.equal(back.connack.sessionPresent, true);
    await sleep(1_000);
    const queued = back.inbox.messages.filter((m) => m.topic === t && m.payload !== "probe");
    assert.deepEqual(queued.map((m) => m.payload), [], "nothing queued for the offline member");
  });

  test("with every member offline, the turns go round them and none is lost", {
    timeout: 90_000,
  }, async () => {
    const t = `offline/${uid()}`;
    const group = `$share/g/${t}`;
    const [idA, idB] = [`offA-${uid()}`, `offB-${uid()}`];
    const a = await onA.connect({ clientId: idA, clean: false });
    const b = await onB.connect({ clientId: idB, clean: false });
    await subscribe(a.client, group, { qos: 1 });
    await subscribe(b.client, group, { qos: 1 });
    const pub = await onA.connect({ clientId: `pub-${uid()}` });
    await untilRouted(pub.client, b.inbox, t);
    await a.client.endAsync();
    await b.client.endAsync();
    await sleep(1_000);
    for (let i = 0; i < N; i++) await publish(pub.client, t, `m${i}`, { qos: 1 });
    const a2 = await onA.connect({ clientId: idA, clean: false });
    const b2 = await onB.connect({ clientId: idB, clean: false });
    const payloads = async (c: Connected) => {
      await sleep(1_500);
      return c.inbox.messages.filter((m) => m.topic === t && m.payload !== "probe")
        .map((m) => m.payload);
    };
    const [gotA, gotB] = [await payloads(a2), await payloads(b2)];
    const all = [...gotA, ...gotB].sort();
    assert.deepEqual(all, Array.from({ length: N }, (_, i) => `m${i}`).sort(), "each once");
    assert.ok(
      gotA.length > 0 && gotB.length > 0,
      `both took turns (${gotA.length}, ${gotB.length})`,
    );
  });
});
