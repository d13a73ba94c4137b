/** The retained half of the store contract (run by runStoreContract in ./contract.ts). */
import { test } from "node:test";
import assert from "node:assert/strict";
import type { StoreTest } from "./contract.ts";
import type { MessageData } from "./types.ts";

const text = (b: Uint8Array) => new TextDecoder().decode(b);

export function runRetainedContract(
  opts: { skip: string | false; timeout: number },
  withStore: (body: StoreTest) => Promise<void>,
): void {
  test(
    "retained messages: set, match by filter, replace, clear, count",
    opts,
    () =>
      withStore(async ({ retained }, backend) => {
        const r = (topic: string, payload: string, extra: Partial<MessageData> = {}) => ({
          topic,
          payload: new TextEncoder().encode(payload),
          qos: 1 as const,
          retain: true,
          ...extra,
        });
        await retained.setRetained("a/b", r("a/b", "1"));
        await retained.setRetained("a/c", r("a/c", "2", { properties: { contentType: "t" } }));
        await retained.setRetained("$SYS/x", r("$SYS/x", "s"));
        await retained.setRetained("gone", r("gone", "old", { expiresAt: Date.now() - 1 }));
        await retained.setRetained("a/b", r("a/b", "1b"));
        assert.equal(retained.retainedCount(), 4);
        const found = retained.matchRetained("a/+").map((m) => `${m.topic}=${text(m.payload)}`);
        assert.deepEqual(found.sort(), ["a/b=1b", "a/c=2"]);
        assert.deepEqual(retained.matchRetained("#").map((m) => m.topic).sort(), ["a/b", "a/c"]);
        assert.equal(retained.retainedCount(), 3, "the expired one is gone once seen");
        await retained.setRetained("a/c", undefined);
        assert.deepEqual(retained.matchRetained("a/c"), []);
        if (!backend.durableRetained) return;
        const again = await backend.open();
        try {
          assert.equal(again.retained.retainedCount(), 2);
          const [m] = again.retained.matchRetained("a/b");
          assert.equal(text(m.payload), "1b");
          assert.equal(m.qos, 1);
          assert.equal(m.retain, true);
        } finally {
          await again.sessions.close();
          await again.retained.close();
        }
      }),
  );

  test(
    "the retained store keeps its own copy of the payload",
    opts,
    () =>
      withStore(async ({ retained }) => {
        const chunk = new TextEncoder().encode("xxhelloyy");
        await retained.setRetained("t", {
          topic: "t",
          payload: chunk.subarray(2, 7),
          qos: 0,
          retain: true,
        });
        chunk.fill(0);
        assert.equal(text(retained.matchRetained("t")[0].payload), "hello");
      }),
  );
}
