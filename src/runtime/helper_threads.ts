/**
 * Keeps the runtime's own helper threads from delaying the event loop.
 *
 * JavaScriptCore and V8 compile hot functions, and Bun's allocator returns
 * memory to the system, on threads of their own. When the broker is pinned to
 * one core (or the machine has few), those threads take the core the event
 * loop needs just as a packet arrives: in a fresh Bun broker the JIT compilers
 * alone ran ~250 ms in its first two seconds, and that is where the slowest
 * 1% of deliveries came from. Linux lets a process lower the priority of its
 * own threads (no privilege needed), so we give them `nice` 5: the scheduler
 * prefers the event loop when a packet arrives, and under full load the
 * helpers still get about a quarter of the core.
 *
 * Why not less: a burst into a fresh broker is served by whatever code the JIT
 * has finished. At nice 10 (a tenth of the core) the compiler threads had done
 * little of their ~60 ms of work by the end of `make bench` S1 QoS 0 (100,000
 * PUBLISHes in ~0.2 s), so the event loop ran unoptimized code throughout:
 * 8 alternating fresh-broker runs, messages per broker CPU-second, median
 * 421k at nice 10, 533k at nice 5 (Mosquitto 349k); earlier sets gave 479k
 * (10), 550k (6), 555k (3), 567k (0). nice 19 starved compilation outright.
 * (Nice 10 was chosen for S4-rate200's p99 in a fresh broker; what 5 costs
 * there could not be measured on the shared machine of 2026-12-02.)
 *
 * Where the runtime can call sched_setscheduler, helpers also go in SCHED_BATCH
 * (see HelperThreadRule): that keeps them from preempting the event loop
 * without taking CPU from them, which lowering V8's workers on Deno did.
 *
 * Linux only (threads are listed in /proc/self/task); elsewhere this does
 * nothing. Threads may come and go (JIT workers exit when idle and are started
 * again by the event loop, at its priority), so the table is swept again now
 * and then; a sweep reads only the names of threads it has not seen.
 */
import { openSync, readdirSync, readFileSync, readSync } from "node:fs";
import { setPriority } from "node:os";
import { pid } from "node:process";
import {
  cpusAllowed,
  type IdleThreadTable,
  MAX_SHARED_CPUS,
  mayLeaveIdle,
  startIdleGovernor,
} from "./idle_helpers.ts";

/** Nice value of the helper threads: low enough to yield, high enough to make progress. */
export const HELPER_NICE = 5;

/** How often to look for new helper threads. */
const SWEEP_INTERVAL_MS = 1000;

/**
 * What to do with a runtime's helper threads, by the start of their name (as /proc shows it,
 * at most 15 bytes): lower their nice value, and/or put them in SCHED_BATCH.
 *
 * SCHED_BATCH keeps the thread's share of the core (its nice value still sets that) but a
 * batch thread that wakes never preempts the running one: the compiler or GC helper runs when
 * the event loop waits for input or at the next tick, instead of cutting into the message
 * being handled. Measured on a quiet host (bench/notes/sched_batch.md): V8's workers in batch
 * raised a fresh Deno broker's S1 QoS 0 burst by 10-20% (two A/Bs of 8 rounds), where nice 5
 * for them had cost 5-35% of it; the S4-rate200 p99 did not move outside the noise.
 */
export interface HelperThreadRule {
  prefix: string;
  /** Nice value to set; absent: left as it is (the event loop's). */
  nice?: number;
  batch?: boolean;
  /** SCHED_IDLE while the event loop has slack (idle_helpers.ts), where the runtime can. */
  idleWhileQuiet?: boolean;
}

/** What the sweeper needs from the operating system (a fake in tests). */
export interface ThreadTable {
  /** Ids of this process's threads. */
  ids(): string[];
  /** A thread's name, or undefined when it is gone. */
  name(id: string): string | undefined;
  /** Sets a thread's nice value; throws when that is not allowed. */
  setNice(id: string, nice: number): void;
  /** Puts a thread in SCHED_BATCH; absent where the runtime cannot; throws when refused. */
  setBatch?(id: string): void;
  /** SCHED_IDLE or back to SCHED_OTHER; absent where the runtime cannot; throws when refused. */
  setIdle?(id: string, idle: boolean): void;
  /** CPU the event loop's thread has used so far, ns. */
  loopCpuNs?(): number;
  /** Whether a thread at `nice` may be taken out of SCHED_IDLE again (idle_helpers.ts). */
  mayLeaveIdle?(nice: number): boolean;
  /** How many CPUs this process may run on. */
  cpus?(): number;
}

/**
 * /proc/self/task, read through node:fs (both runtimes have it); `setBatch` and `setIdle` (a
 * thread's scheduling policy, which Node's API cannot set) from the runtime.
 */
export function linuxThreadTable(
  setBatch?: (tid: number) => void,
  setIdle?: (tid: number, idle: boolean) => void,
): ThreadTable {
  return {
    ids: () => readdirSync("/proc/self/task"),
    name(id) {
      try {
        return readFileSync(`/proc/self/task/${id}/comm`, "utf8").trimEnd();
      } catch {
        return undefined; // exited between the listing and now
      }
    },
    // On Linux setpriority(PRIO_PROCESS, tid) applies to that one thread.
    setNice: (id, nice) => setPriority(Number(id), nice),
    setBatch: setBatch && ((id) => setBatch(Number(id))),
    setIdle: setIdle && ((id, idle) => setIdle(Number(id), idle)),
    loopCpuNs: loopCpuReader(),
    cpus: () => cpusAllowed(readFileSync("/proc/self/status", "utf8")),
    mayLeaveIdle: (nice) =>
      mayLeaveIdle(
        readFileSync("/proc/self/status", "utf8"),
        readFileSync("/proc/self/limits", "utf8"),
        nice,
        readIfThere("/proc/self/uid_map"), // absent: no user namespaces, the initial one
      ),
  };
}

function readIfThere(path: string): string | undefined {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return undefined;
  }
}

/**
 * The event loop's thread's CPU time, ns: the first field of its schedstat (its id is the
 * process id). The file stays open and is read at offset 0: one system call per sample.
 */
function loopCpuReader(): () => number {
  let fd: number | undefined;
  const buf = new Uint8Array(128);
  return () => {
    fd ??= openSync(`/proc/self/task/${pid}/schedstat`, "r");
    const n = readSync(fd, buf, 0, buf.length, 0);
    let ns = 0;
    for (let i = 0; i < n && buf[i] >= 0x30 && buf[i] <= 0x39; i++) ns = ns * 10 + buf[i] - 0x30;
    return ns;
  };
}

export class HelperThreadSweeper {
  #seen = new Set<string>();

  constructor(
    private readonly rules: readonly HelperThreadRule[],
    private readonly table: ThreadTable,
  ) {}

  /** Applies its rule to every helper thread not seen before; returns how many were changed. */
  sweep(): number {
    const ids = this.table.ids();
    const seen = new Set<string>();
    let lowered = 0;
    for (const id of ids) {
      seen.add(id);
      if (this.#seen.has(id)) continue;
      const name = this.table.name(id);
      const rule = name === undefined
        ? undefined
        : this.rules.find((r) => name.startsWith(r.prefix));
      if (rule && this.#apply(id, rule)) lowered++;
    }
    this.#seen = seen; // forget threads that exited: ids are reused
    return lowered;
  }

  /** True when anything was changed; a refusal (a sandbox, say) leaves the thread as it is. */
  #apply(id: string, rule: HelperThreadRule): boolean {
    let changed = false;
    if (rule.batch && this.table.setBatch) {
      try {
        this.table.setBatch(id); // first: sched_setscheduler keeps the nice value it finds
        changed = true;
      } catch { /* the broker works the same without it */ }
    }
    if (rule.nice !== undefined) {
      try {
        this.table.setNice(id, rule.nice);
        changed = true;
      } catch { /* as above */ }
    }
    return changed;
  }
}

/**
 * Starts sweeping now and every second, and the idle governor (idle_helpers.ts) for the rules
 * that ask for it where the process may use it; returns a function that stops both. Where it
 * may not, those rules' nice values apply as for the others.
 * Does nothing (and returns a no-op) off Linux or with no helper names.
 */
export function lowerHelperThreads(
  rules: readonly HelperThreadRule[],
  platform: string,
  table: ThreadTable = linuxThreadTable(),
): () => void {
  if (platform !== "linux" || rules.length === 0) return () => {};
  const idleRules = rules.filter((r) => r.idleWhileQuiet);
  const idleTable = mayIdle(idleRules, table);
  const sweeper = new HelperThreadSweeper(
    idleTable ? rules.filter((r) => !r.idleWhileQuiet) : rules,
    table,
  );
  try {
    sweeper.sweep();
  } catch {
    return () => {}; // no /proc (a container without it): nothing to do
  }
  const timer = setInterval(() => {
    try {
      sweeper.sweep();
    } catch {
      clearInterval(timer);
    }
  }, SWEEP_INTERVAL_MS);
  const stopGovernor = idleTable ? startIdleGovernor(idleRules, idleTable) : () => {};
  return () => {
    clearInterval(timer);
    stopGovernor();
  };
}

/**
 * The table as the governor needs it, if there are rules for it (`idleRules`), the helpers share
 * the loop's cores and the process may take them out of SCHED_IDLE again.
 */
function mayIdle(
  idleRules: readonly HelperThreadRule[],
  table: ThreadTable,
): IdleThreadTable | undefined {
  const { setIdle, loopCpuNs, mayLeaveIdle, cpus } = table;
  if (idleRules.length === 0 || !setIdle || !loopCpuNs || !mayLeaveIdle || !cpus) return undefined;
  try {
    if (cpus() > MAX_SHARED_CPUS) return undefined; // the helpers have cores of their own
    if (!idleRules.every((r) => mayLeaveIdle(r.nice ?? 0))) return undefined;
    // A kernel without scheduler statistics shows 0 (or no file): every sample would look
    // quiet, and a saturated loop would keep its compilers idle.
    if (!(loopCpuNs() > 0)) return undefined;
  } catch {
    return undefined; // no /proc/self/status, limits or schedstat
  }
  return { ...table, setIdle, loopCpuNs };
}
