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
  HelperThreadSweeper,
  linuxThreadTable,
  lowerHelperThreads,
  type ThreadTable,
} from "../src/runtime/helper_threads.ts";
import { testRuntime } from "./helpers/harness.ts";

class FakeTable implements ThreadTable {
  threads = new Map<string, string>();
  nice = new Map<string, number>();
  nameReads = 0;
  refuse = new Set<string>();
  ids = () => [...this.threads.keys()];
  name = (id: string) => {
    this.nameReads++;
    return this.threads.get(id);
  };
  setNice = (id: string, nice: number) => {
    if (this.refuse.has(id)) throw new Error("EPERM");
    this.nice.set(id, nice);
  };
}

describe("helper threads: sweep", () => {
  test("lowers only threads whose name starts with a helper prefix", () => {
    const t = new FakeTable();
    t.threads.set("100", "bun").set("101", "JITWorker").set("102", "HeapHelper")
      .set("103", "mi-scavenger");
    const lowered = new HelperThreadSweeper(["JITWorker", "mi-scavenger"], t).sweep();
    assert.equal(lowered, 2);
    assert.deepEqual([...t.nice].sort(), [["101", HELPER_NICE], ["103", HELPER_NICE]]);
  });

  test("a thread is looked at once; one that appears later is lowered by the next sweep", () => {
    const t = new FakeTable();
    t.threads.set("1", "main").set("2", "JITWorker");
    const s = new HelperThreadSweeper(["JITWorker"], t);
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
    const s = new HelperThreadSweeper(["JITWorker"], t);
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
    assert.equal(new HelperThreadSweeper(["JITWorker"], t).sweep(), 1);
    assert.deepEqual([...t.nice.keys()], ["3"]);
  });

  test("off Linux, or with no helper names, nothing is read", () => {
    const t = new FakeTable();
    t.threads.set("1", "JITWorker");
    lowerHelperThreads(["JITWorker"], "darwin", t)();
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
      const lowered = new HelperThreadSweeper([helper.name], linuxThreadTable).sweep();
      assert.ok(lowered >= 1);
      assert.equal(getPriority(Number(helper.id)), HELPER_NICE);
      assert.equal(getPriority(process.pid), mainBefore);
    });

    test("the runtime's helper names match threads it really has", async () => {
      const runtime = await testRuntime();
      const names = ownThreads().map((t) => t.name);
      // Bun names its JIT workers and scavenger; an upgrade that renames them must show here.
      for (const prefix of runtime.helperThreads.filter((p) => p !== "JSCWarmUp")) {
        assert.ok(
          names.some((n) => n.startsWith(prefix)),
          `${runtime.name}: no thread named ${prefix} among ${names.join(", ")}`,
        );
      }
    });
  });
}
