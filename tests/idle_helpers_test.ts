/**
 * Helper threads in SCHED_IDLE while the event loop has slack (src/runtime/idle_helpers.ts): the
 * governor on a fake thread table and a fake CPU clock, the right to leave SCHED_IDLE, the
 * fallback to plain nice values, then the runtime's setter on this process's own threads (Linux).
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { getPriority } from "node:os";
import process from "node:process";
import {
  HELPER_NICE,
  type HelperThreadRule,
  lowerHelperThreads,
  type ThreadTable,
} from "../src/runtime/helper_threads.ts";
import {
  BUSY_SHARE,
  cpusAllowed,
  IdleHelperGovernor,
  type IdleThreadTable,
  LIST_EVERY_MS,
  LOAD_SAMPLE_MS,
  mayLeaveIdle,
  QUIET_SAMPLES,
  startIdleGovernor,
} from "../src/runtime/idle_helpers.ts";
import { testRuntime } from "./helpers/harness.ts";
import { policyOf, SCHED_IDLE, SCHED_OTHER } from "./helpers/sched.ts";

const RULES: HelperThreadRule[] = [
  { prefix: "JITWorker", nice: HELPER_NICE, idleWhileQuiet: true },
];

class FakeTable implements IdleThreadTable {
  threads = new Map<string, string>();
  nice = new Map<string, number>();
  idle = new Set<string>();
  calls: string[] = [];
  refuse = new Set<string>();
  cpuNs = 0;
  ids = () => [...this.threads.keys()];
  name = (id: string) => this.threads.get(id);
  setNice = (id: string, nice: number) => {
    this.calls.push(`nice ${id}`);
    this.nice.set(id, nice);
  };
  setIdle = (id: string, idle: boolean) => {
    if (this.refuse.has(id)) throw new Error("EPERM");
    this.calls.push(`${idle ? "idle" : "other"} ${id}`);
    if (idle) this.idle.add(id);
    else this.idle.delete(id);
  };
  loopCpuNs = () => this.cpuNs;
}

/** Runs `n` samples in which the loop's thread used `share` of the time. */
function samples(g: IdleHelperGovernor, t: FakeTable, clock: { ms: number }, share: number, n = 1) {
  for (let i = 0; i < n; i++) {
    clock.ms += LOAD_SAMPLE_MS;
    t.cpuNs += share * LOAD_SAMPLE_MS * 1e6;
    g.tick(clock.ms);
  }
}

describe("idle helpers: the governor", () => {
  test("helpers go idle after a quiet spell and back at the first busy sample", () => {
    const t = new FakeTable();
    t.threads.set("1", "bun").set("2", "JITWorker").set("3", "HeapHelper");
    const clock = { ms: 1000 };
    const g = new IdleHelperGovernor(RULES, t, clock.ms);
    samples(g, t, clock, 0.1, QUIET_SAMPLES - 1);
    assert.equal(g.idle, false, "not before the quiet spell is over");
    assert.equal(t.idle.size, 0);
    assert.equal(t.nice.get("2"), HELPER_NICE, "a helper gets its rule's nice value first");
    samples(g, t, clock, 0.1);
    assert.equal(g.idle, true);
    assert.deepEqual([...t.idle], ["2"], "only the helper, never the loop or other threads");
    samples(g, t, clock, BUSY_SHARE + 0.2);
    assert.equal(g.idle, false, "one busy sample is enough");
    assert.equal(t.idle.size, 0);
    assert.deepEqual(t.calls, ["nice 2", "idle 2", "other 2"], "a call per change, no more");
  });

  test("a quiet sample in a busy spell restarts the count", () => {
    const t = new FakeTable();
    t.threads.set("2", "JITWorker");
    const clock = { ms: 0 };
    const g = new IdleHelperGovernor(RULES, t, clock.ms);
    samples(g, t, clock, 0.1, QUIET_SAMPLES - 1);
    samples(g, t, clock, 0.9);
    samples(g, t, clock, 0.1, QUIET_SAMPLES - 1);
    assert.equal(g.idle, false);
    samples(g, t, clock, 0.1);
    assert.equal(g.idle, true);
  });

  test("a new helper joins the current state; an exited one is forgotten and its id reused", () => {
    const t = new FakeTable();
    t.threads.set("2", "JITWorker");
    const clock = { ms: 0 };
    const g = new IdleHelperGovernor(RULES, t, clock.ms);
    samples(g, t, clock, 0, QUIET_SAMPLES);
    t.threads.set("4", "JITWorker");
    samples(g, t, clock, 0, LIST_EVERY_MS / LOAD_SAMPLE_MS - 1);
    assert.ok(!t.idle.has("4"), "threads are listed once a second while nothing changes");
    samples(g, t, clock, 0);
    assert.deepEqual([...t.idle].sort(), ["2", "4"]);
    t.threads.set("5", "JITWorker");
    samples(g, t, clock, 1);
    assert.equal(t.nice.get("5"), HELPER_NICE, "and at once when the state changes");
    t.threads.delete("2");
    t.idle.delete("2");
    samples(g, t, clock, 0, QUIET_SAMPLES);
    t.threads.set("2", "JITWorker"); // the kernel reused the id for a new thread
    samples(g, t, clock, 0, LIST_EVERY_MS / LOAD_SAMPLE_MS);
    assert.ok(t.idle.has("2"));
  });

  test("a thread refused its way back stays marked idle and is tried again", () => {
    const t = new FakeTable();
    t.threads.set("2", "JITWorker");
    const clock = { ms: 0 };
    const g = new IdleHelperGovernor(RULES, t, clock.ms);
    samples(g, t, clock, 0, QUIET_SAMPLES);
    t.refuse.add("2");
    samples(g, t, clock, 1);
    assert.ok(t.idle.has("2"), "refused");
    t.refuse.delete("2");
    samples(g, t, clock, 1, LIST_EVERY_MS / LOAD_SAMPLE_MS);
    assert.ok(!t.idle.has("2"), "back at the next look");
  });

  test("release() puts every idle helper back; a failed sample does it and stops", async () => {
    const t = new FakeTable();
    t.threads.set("2", "JITWorker").set("3", "JITWorker");
    const clock = { ms: 0 };
    const g = new IdleHelperGovernor(RULES, t, clock.ms);
    samples(g, t, clock, 0, QUIET_SAMPLES);
    g.release();
    assert.equal(t.idle.size, 0);
    const live = new FakeTable();
    live.threads.set("2", "JITWorker");
    startIdleGovernor(RULES, live);
    const until = async (f: () => boolean) => {
      for (let i = 0; i < 400 && !f(); i++) await new Promise((r) => setTimeout(r, 5));
    };
    await until(() => live.idle.has("2"));
    assert.ok(live.idle.has("2"), "idle after the quiet spell");
    live.loopCpuNs = () => {
      throw new Error("EMFILE");
    };
    await until(() => !live.idle.has("2"));
    assert.ok(!live.idle.has("2"), "a failed sample put it back");
    const calls = live.calls.length;
    await new Promise((r) => setTimeout(r, LOAD_SAMPLE_MS * 3));
    assert.equal(live.calls.length, calls, "and the governor stopped");
  });

  test("a refusal leaves that thread as it is and the others are still changed", () => {
    const t = new FakeTable();
    t.threads.set("2", "JITWorker").set("3", "JITWorker");
    t.refuse.add("2");
    const clock = { ms: 0 };
    const g = new IdleHelperGovernor(RULES, t, clock.ms);
    samples(g, t, clock, 0, QUIET_SAMPLES);
    assert.deepEqual([...t.idle], ["3"]);
    t.refuse.delete("2");
    samples(g, t, clock, 1);
    samples(g, t, clock, 0, QUIET_SAMPLES);
    assert.deepEqual([...t.idle], ["3"], "a refused thread is not asked again");
  });
});

describe("idle helpers: the right to leave SCHED_IDLE", () => {
  const status = (capEff: string) => `Name:\tbun\nCapInh:\t0000000000000000\nCapEff:\t${capEff}\n`;
  const limits = (soft: string) =>
    `Limit                     Soft Limit           Hard Limit           Units     \n` +
    `Max nice priority         ${soft.padEnd(21)}${soft.padEnd(21)}\n`;

  test("CAP_SYS_NICE, or an RLIMIT_NICE that allows the nice value", () => {
    assert.equal(mayLeaveIdle(status("000001ffffffffff"), limits("0"), 5), true, "root");
    assert.equal(mayLeaveIdle(status("0000000000800000"), limits("0"), 5), true, "CAP_SYS_NICE");
    assert.equal(mayLeaveIdle(status("0000000000000000"), limits("0"), 5), false, "a user");
    assert.equal(mayLeaveIdle(status("0000000000000000"), limits("15"), 5), true);
    assert.equal(mayLeaveIdle(status("0000000000000000"), limits("14"), 5), false);
    assert.equal(mayLeaveIdle(status("0000000000000000"), limits("unlimited"), 5), true);
    assert.equal(mayLeaveIdle("", "", 5), false, "nothing readable: no");
    // In a user namespace the kernel checks the capability in the initial one: only the limit.
    const rootless = "         0       1000          1\n";
    assert.equal(mayLeaveIdle(status("000001ffffffffff"), limits("0"), 5, rootless), false);
    assert.equal(mayLeaveIdle(status("000001ffffffffff"), limits("15"), 5, rootless), true);
    assert.equal(
      mayLeaveIdle(
        status("000001ffffffffff"),
        limits("0"),
        5,
        "         0          0 4294967295\n",
      ),
      true,
      "the initial namespace",
    );
  });

  test("without the right, idle rules keep their nice values and nothing goes idle", () => {
    const table = fakeThreadTable(false);
    const stop = lowerHelperThreads(RULES, "linux", table);
    stop();
    assert.deepEqual(table.calls, ["nice 2"], "the sweeper gave the nice value at once");
  });

  test("a kernel without scheduler statistics (the loop's CPU reads 0): no governor", () => {
    const table = { ...fakeThreadTable(true), loopCpuNs: () => 0 };
    lowerHelperThreads(RULES, "linux", table)();
    assert.deepEqual(table.calls, ["nice 2"]);
  });

  test("with CPUs of their own, the helpers keep their nice values: no governor", () => {
    const table = fakeThreadTable(true, 3);
    lowerHelperThreads(RULES, "linux", table)();
    assert.deepEqual(table.calls, ["nice 2"]);
  });

  test("Cpus_allowed_list counted", () => {
    assert.equal(cpusAllowed("Name:\tbun\nCpus_allowed_list:\t1\n"), 1);
    assert.equal(cpusAllowed("Cpus_allowed_list:\t0-3,6\n"), 5);
    assert.equal(cpusAllowed("Cpus_allowed_list:\t0-1\n"), 2);
    assert.equal(cpusAllowed(""), Infinity, "unknown: as many as the helpers need");
  });

  test("with it, the governor takes the idle rules and the sweeper leaves them", async () => {
    const table = fakeThreadTable(true);
    const stop = lowerHelperThreads(RULES, "linux", table);
    assert.deepEqual(table.calls, [], "the sweeper did not touch the helper");
    await new Promise((r) => setTimeout(r, LOAD_SAMPLE_MS * 3));
    stop();
    assert.equal(table.calls[0], "nice 2", "the governor adopted it");
  });
});

/**
 * A ThreadTable with one helper (id 2) that records calls; `allowed`: may leave SCHED_IDLE;
 * `cpus`: how many CPUs the process may use.
 */
function fakeThreadTable(allowed: boolean, cpus = 1): ThreadTable & { calls: string[] } {
  const calls: string[] = [];
  return {
    calls,
    ids: () => ["1", "2"],
    name: (id) => (id === "2" ? "JITWorker" : "bun"),
    setNice: (id) => void calls.push(`nice ${id}`),
    setIdle: (id, idle) => void calls.push(`${idle ? "idle" : "other"} ${id}`),
    loopCpuNs: () => 1e9, // a kernel with scheduler statistics
    mayLeaveIdle: () => allowed,
    cpus: () => cpus,
  };
}

if (process.platform === "linux") {
  describe("idle helpers: this process (Linux)", () => {
    test("a runtime with idle rules puts a helper thread in SCHED_IDLE and back", async () => {
      const runtime = await testRuntime();
      const wantsIdle = runtime.helperThreads.some((r) => r.idleWhileQuiet);
      assert.equal(!!runtime.threadIdle, wantsIdle, "idle rules come with a way to apply them");
      if (!wantsIdle) return; // Deno: its V8 workers are in SCHED_BATCH (deno.ts)
      const setIdle = runtime.threadIdle?.();
      assert.ok(setIdle, `${runtime.name} reaches libc's sched_setscheduler on Linux`);
      const main = String(process.pid);
      const helper = readdirSync("/proc/self/task").find((id) =>
        id !== main && policyOf(id) === SCHED_OTHER
      );
      assert.ok(helper, "a helper thread in SCHED_OTHER");
      const nice = getPriority(Number(helper));
      const status = readFileSync("/proc/self/status", "utf8");
      const uidMap = readFileSync("/proc/self/uid_map", "utf8");
      // Without the right to come back, a thread of this test process would stay idle.
      if (mayLeaveIdle(status, readFileSync("/proc/self/limits", "utf8"), nice, uidMap)) {
        setIdle(Number(helper), true);
        assert.equal(policyOf(helper), SCHED_IDLE);
        setIdle(Number(helper), false);
        assert.equal(policyOf(helper), SCHED_OTHER);
        assert.equal(getPriority(Number(helper)), nice, "its nice value kept");
      }
      assert.equal(policyOf(main), SCHED_OTHER, "the event loop's thread is left alone");
      assert.throws(() => setIdle(0x7ffffff0, true), "a refusal (no such thread) throws");
    });
  });
}
