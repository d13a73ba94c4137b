/**
 * Helper threads at a lower priority than the event loop: the sweep logic on a
 * fake thread table, then the real thing on this process's own threads (Linux).
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { getPriority } from "node:os";
import process from "node:process";
import {
  HELPER_NICE,
  type HelperThreadRule,
  HelperThreadSweeper,
  linuxThreadTable,
  lowerHelperThreads,
  type ThreadTable,
} from "../src/runtime/helper_threads.ts";
import { testRuntime } from "./helpers/harness.ts";
import { policyOf, SCHED_BATCH, SCHED_OTHER } from "./helpers/sched.ts";

/** The rule Bun's JIT workers have: nice 5, no batch (tests of the nice value alone). */
const lower = (...prefixes: string[]): HelperThreadRule[] =>
  prefixes.map((prefix) => ({ prefix, nice: HELPER_NICE }));

class FakeTable implements ThreadTable {
  threads = new Map<string, string>();
  nice = new Map<string, number>();
  batch = new Set<string>();
  nameReads = 0;
  refuse = new Set<string>();
  refuseBatch = new Set<string>();
  ids = () => [...this.threads.keys()];
  name = (id: string) => {
    this.nameReads++;
    return this.threads.get(id);
  };
  setNice = (id: string, nice: number) => {
    if (this.refuse.has(id)) throw new Error("EPERM");
    this.nice.set(id, nice);
  };
  setBatch? = (id: string) => {
    if (this.refuseBatch.has(id)) throw new Error("EPERM");
    this.batch.add(id);
  };
}

describe("helper threads: sweep", () => {
  test("lowers only threads whose name starts with a helper prefix", () => {
    const t = new FakeTable();
    t.threads.set("100", "bun").set("101", "JITWorker").set("102", "HeapHelper")
      .set("103", "mi-scavenger");
    const lowered = new HelperThreadSweeper(lower("JITWorker", "mi-scavenger"), t).sweep();
    assert.equal(lowered, 2);
    assert.deepEqual([...t.nice].sort(), [["101", HELPER_NICE], ["103", HELPER_NICE]]);
  });

  test("a thread is looked at once; one that appears later is lowered by the next sweep", () => {
    const t = new FakeTable();
    t.threads.set("1", "main").set("2", "JITWorker");
    const s = new HelperThreadSweeper(lower("JITWorker"), t);
    assert.equal(s.sweep(), 1);
    const reads = t.nameReads;
    assert.equal(s.sweep(), 0);
    assert.equal(t.nameReads, reads, "known threads are not read again");
    t.threads.set("3", "JITWorker");
    assert.equal(s.sweep(), 1);
    assert.equal(t.nice.get("3"), HELPER_NICE);
  });

  test("an exited thread is forgotten, so a new thread reusing its id is lowered", () => {
    const t = new FakeTable();
    t.threads.set("7", "JITWorker");
    const s = new HelperThreadSweeper(lower("JITWorker"), t);
    s.sweep();
    t.threads.delete("7");
    t.nice.clear();
    s.sweep();
    t.threads.set("7", "JITWorker"); // the kernel reused the id
    assert.equal(s.sweep(), 1);
    assert.equal(t.nice.get("7"), HELPER_NICE);
  });

  test("a refusal or a thread gone mid-sweep does not stop the others", () => {
    const t = new FakeTable();
    t.threads.set("1", "JITWorker").set("2", "JITWorker").set("3", "JITWorker");
    t.refuse.add("1");
    const realName = t.name;
    t.name = (id) => (id === "2" ? undefined : realName(id));
    assert.equal(new HelperThreadSweeper(lower("JITWorker"), t).sweep(), 1);
    assert.deepEqual([...t.nice.keys()], ["3"]);
  });

  test("batch and nice as each rule says; a refused batch still gets its nice value", () => {
    const t = new FakeTable();
    t.threads.set("1", "V8 DefaultWorker").set("2", "JITWorker").set("3", "JITWorker")
      .set("4", "deno");
    t.refuseBatch.add("3");
    const rules: HelperThreadRule[] = [
      { prefix: "V8 DefaultWorke", batch: true },
      { prefix: "JITWorker", nice: HELPER_NICE, batch: true },
    ];
    assert.equal(new HelperThreadSweeper(rules, t).sweep(), 3);
    assert.deepEqual([...t.batch].sort(), ["1", "2"]);
    assert.deepEqual([...t.nice].sort(), [["2", HELPER_NICE], ["3", HELPER_NICE]]);
  });

  test("without a way to set the policy, a batch-only rule changes nothing", () => {
    const t = new FakeTable();
    t.setBatch = undefined;
    t.threads.set("1", "V8 DefaultWorker");
    const rules = [{ prefix: "V8 DefaultWorke", batch: true }];
    assert.equal(new HelperThreadSweeper(rules, t).sweep(), 0);
    assert.equal(t.nice.size, 0);
  });

  test("off Linux, or with no helper names, nothing is read", () => {
    const t = new FakeTable();
    t.threads.set("1", "JITWorker");
    lowerHelperThreads(lower("JITWorker"), "darwin", t)();
    lowerHelperThreads([], "linux", t)();
    assert.equal(t.nameReads, 0);
    assert.equal(t.nice.size, 0);
  });
});

/** This process's threads and their names, straight from /proc. */
function ownThreads(): { id: string; name: string }[] {
  return readdirSync("/proc/self/task").map((id) => ({
    id,
    name: readFileSync(`/proc/self/task/${id}/comm`, "utf8").trimEnd(),
  }));
}

if (process.platform === "linux") {
  describe("helper threads: this process (Linux)", () => {
    test("a sweep lowers the named threads and leaves the event loop's thread alone", () => {
      const main = String(process.pid);
      const threads = ownThreads();
      const mainName = threads.find((t) => t.id === main)?.name;
      // A thread named like the main one would take the main thread down with it (the sweep goes
      // by name), and which threads exist depends on what earlier tests in this process did.
      const helper = threads.find((t) => t.id !== main && t.name !== mainName);
      assert.ok(helper, "a JavaScript runtime always has threads besides the main one");
      const mainBefore = getPriority(process.pid);
      const rules = [{ prefix: helper.name, nice: HELPER_NICE }];
      const lowered = new HelperThreadSweeper(rules, linuxThreadTable()).sweep();
      assert.ok(lowered >= 1);
      assert.equal(getPriority(Number(helper.id)), HELPER_NICE);
      assert.equal(getPriority(process.pid), mainBefore);
    });

    test("a runtime with batch rules puts a helper thread in SCHED_BATCH", async () => {
      const runtime = await testRuntime();
      const wantsBatch = runtime.helperThreads.some((r) => r.batch);
      assert.equal(!!runtime.threadBatch, wantsBatch, "batch rules come with a way to apply them");
      if (!wantsBatch) return; // Bun: nice only (bun.ts says why)
      const setBatch = runtime.threadBatch?.();
      assert.ok(setBatch, `${runtime.name} reaches libc's sched_setscheduler on Linux`);
      const main = String(process.pid);
      const helper = ownThreads().find((t) => t.id !== main && policyOf(t.id) === SCHED_OTHER);
      assert.ok(helper, "a helper thread still in SCHED_OTHER");
      const nice = getPriority(Number(helper.id));
      const sweeper = new HelperThreadSweeper(
        [{ prefix: helper.name, batch: true }],
        linuxThreadTable(setBatch),
      );
      assert.ok(sweeper.sweep() >= 1);
      assert.equal(policyOf(helper.id), SCHED_BATCH);
      assert.equal(getPriority(Number(helper.id)), nice);
      assert.equal(policyOf(main), SCHED_OTHER, "the event loop's thread is left alone");
      assert.throws(() => setBatch(0x7ffffff0), "a refusal (no such thread) throws");
    });

    test("the runtime's helper names match threads it really has", async () => {
      const runtime = await testRuntime();
      const names = ownThreads().map((t) => t.name);
      // Bun names its JIT workers and scavenger; an upgrade that renames them must show here.
      const prefixes = runtime.helperThreads.map((r) => r.prefix);
      for (const prefix of prefixes.filter((p) => p !== "JSCWarmUp")) {
        assert.ok(
          names.some((n) => n.startsWith(prefix)),
          `${runtime.name}: no thread named ${prefix} among ${names.join(", ")}`,
        );
      }
    });
  });
}
