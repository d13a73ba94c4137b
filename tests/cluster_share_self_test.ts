/**
 * ignore-client-self-pub across nodes: a publisher that is a share group's only member on its
 * node is not that group's pick for its own messages; the member on the other node gets them
 * all (QA: every other message was dropped, the publisher acknowledged for each).
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { useTwoNodes } from "./helpers/cluster.ts";
import { skipWithoutRedis } from "./helpers/redis_server.ts";
import { publish, sleep, subscribe, uid, withTimeout } from "./helpers/mqttjs.ts";

const skip = skipWithoutRedis();
const { onA, onB } = useTwoNodes(skip, {
  extra: () => Promise.resolve("  ignore-client-self-pub: true\n"),
});

describe("cluster: ignore-client-self-pub and share groups", { skip }, () => {
  test("the publisher's node is not picked for its own message", { timeout: 60_000 }, async () => {
    const t = `self/${uid()}`;
    const self = await onA.connect({ clientId: `self-${uid()}` });
    const other = await onB.connect({ clientId: `other-${uid()}` });
    await subscribe(self.client, `$share/g/${t}`, { qos: 1 });
    await subscribe(other.client, `$share/g/${t}`, { qos: 1 });
    // Once node A knows B's member, B's member gets a warm-up message.
    const deadline = Date.now() + 30_000;
    while (other.inbox.messages.length === 0 && Date.now() < deadline) {
      await publish(self.client, t, "warm", { qos: 1 });
      await sleep(50);
    }
    const before = other.inbox.messages.length;
    assert.ok(before > 0, "node A routes to B's member");
    const N = 20;
    for (let i = 0; i < N; i++) await publish(self.client, t, `s${i}`, { qos: 1 });
    await withTimeout(
      (async () => {
        while (other.inbox.messages.length - before < N) await sleep(50);
      })(),
      `${N} messages on node B`,
      10_000,
    );
    assert.equal(self.inbox.messages.length, 0, "never back to its publisher");
  });
});
