/** tests/helpers/free_port.ts: ports no outgoing connection can take before the server binds. */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { ephemeralStart, freePort } from "./helpers/free_port.ts";

describe("freePort", () => {
  it("is below the kernel's ephemeral range, free, and never handed out twice", async () => {
    const start = ephemeralStart();
    const ports = new Set<number>();
    for (let i = 0; i < 50; i++) {
      const p = await freePort();
      assert.ok(p >= 1024 && p < start, `${p} is in the ephemeral range (from ${start})`);
      assert.ok(!ports.has(p), `${p} handed out twice`);
      ports.add(p);
    }
  });
});
