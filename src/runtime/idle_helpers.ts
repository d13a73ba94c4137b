/**
 * Helper threads in SCHED_IDLE while the event loop has slack, back to their nice value as soon
 * as it is busy.
 *
 * Why: a JIT compiler thread at nice 5 that gets the core keeps it for its whole slice. When the
 * broker shares one core (pinned, a container limited to one cpuset CPU, or beside Redis and
 * another node), every
 * delivery waits meanwhile: in `bench/cluster_ab.ts` the compiler threads ran 1-5 ms unbroken
 * ~35 times in 7 s, and those runs were behind a third of the bursts that set the cross-node p99
 * (bench/notes/cluster_hops.md, "What the slowest 1% wait for"). A SCHED_IDLE thread is
 * preempted by any waking normal thread at once, so it compiles only in the loop's idle time.
 *
 * Why not always: a saturated loop has no idle time, and a fresh broker's burst then runs on
 * baseline code throughout (S1 QoS 0: 372k msg/s with idle compilers against 522k). So the
 * threads go back to their nice value (and a share of the core) while the loop's own thread
 * uses more than half of it, and return to SCHED_IDLE after a short quiet spell.
 *
 * Linux lets a thread leave SCHED_IDLE only at a nice value its RLIMIT_NICE allows, or with
 * CAP_SYS_NICE (sched(7)): an unprivileged broker could put its compilers in SCHED_IDLE and
 * never get them out. Without that right this is not started and the rules' nice values apply
 * as before. A thread the governor may have left idle is put back whenever it stops.
 */
import type { HelperThreadRule, ThreadTable } from "./helper_threads.ts";

/**
 * How often the loop's CPU is sampled. A burst into an idle broker waits up to this long before
 * the compilers get their share back: sampling idle brokers every 100 ms instead cost S1 QoS 0
 * 27% (404k msg/s against 554k), the burst being ~200 ms. Each sample wakes an idle Bun broker
 * (~70 µs of CPU, most of it the wake-up itself): ~0.3% of a core, which is why this runs only
 * where the helpers share the loop's cores (MAX_SHARED_CPUS).
 */
export const LOAD_SAMPLE_MS = 25;
/**
 * With more CPUs than this to run on, the helpers find one of their own and do not delay the
 * loop: the governor is not started.
 */
export const MAX_SHARED_CPUS = 2;
/** A sample in which the loop's thread ran more than this share of the time is "busy". */
export const BUSY_SHARE = 0.5;
/** Consecutive quiet samples before the helpers go idle again (100 ms). */
export const QUIET_SAMPLES = 4;
/**
 * How often new helper threads are looked for while nothing changes (as the sweeper): listing
 * them at every sample cost more than the sample. Until then a new one runs as the loop's do.
 */
export const LIST_EVERY_MS = 1000;

/** Linux's CAP_SYS_NICE (include/uapi/linux/capability.h). */
const CAP_SYS_NICE = 23;

/** What the governor needs from the operating system (a fake in tests). */
export interface IdleThreadTable extends Pick<ThreadTable, "ids" | "name" | "setNice"> {
  /** SCHED_IDLE (true) or SCHED_OTHER at the nice value the thread has (false); throws when refused. */
  setIdle(id: string, idle: boolean): void;
  /** CPU the event loop's thread has used so far, ns. */
  loopCpuNs(): number;
}

export class IdleHelperGovernor {
  /** Helper threads seen, and whether each is idle now; null: not a helper. */
  #threads = new Map<string, boolean | null>();
  #idle = false; // as at start: the rules' nice values
  #quiet = 0;
  #listedMs = -Infinity; // the first sample looks
  #lastCpu: number;
  #lastMs: number;

  constructor(
    private readonly rules: readonly HelperThreadRule[],
    private readonly table: IdleThreadTable,
    nowMs: number,
  ) {
    this.#lastCpu = table.loopCpuNs();
    this.#lastMs = nowMs;
  }

  /** Whether the helpers are idle now. */
  get idle(): boolean {
    return this.#idle;
  }

  /** One sample: decides idle or not from the loop's CPU since the last, and applies it. */
  tick(nowMs: number): void {
    const cpu = this.table.loopCpuNs();
    const share = (cpu - this.#lastCpu) / 1e6 / Math.max(nowMs - this.#lastMs, 1e-3);
    this.#lastCpu = cpu;
    this.#lastMs = nowMs;
    const was = this.#idle;
    if (share > BUSY_SHARE) {
      this.#quiet = 0;
      this.#idle = false;
    } else if (++this.#quiet >= QUIET_SAMPLES) this.#idle = true;
    if (was !== this.#idle || nowMs - this.#listedMs >= LIST_EVERY_MS) {
      this.#listedMs = nowMs;
      this.#apply();
    }
  }

  #apply(): void {
    const live = new Set(this.table.ids());
    for (const id of this.#threads.keys()) if (!live.has(id)) this.#threads.delete(id);
    for (const id of live) {
      let state = this.#threads.get(id);
      if (state === undefined) {
        const name = this.table.name(id);
        if (name === undefined) continue; // exited meanwhile
        const rule = this.rules.find((r) => r.idleWhileQuiet && name.startsWith(r.prefix));
        state = rule ? this.#adopt(id, rule) : null;
        this.#threads.set(id, state);
      }
      if (state === null || state === this.#idle) continue;
      try {
        this.table.setIdle(id, this.#idle);
        this.#threads.set(id, this.#idle);
      } catch {
        // Refused going idle: leave it out. Refused coming back: it stays marked idle, so the
        // next look tries again (a thread left idle would starve in every burst).
        if (this.#idle) this.#threads.set(id, null);
      }
    }
  }

  /** Every helper the governor put in SCHED_IDLE back in SCHED_OTHER (best effort): it stops. */
  release(): void {
    for (const [id, idle] of this.#threads) {
      if (!idle) continue;
      try {
        this.table.setIdle(id, false);
        this.#threads.set(id, false);
      } catch { /* gone, or refused: nothing more to try */ }
    }
  }

  /**
   * A new helper: its rule's nice value first (a thread comes at the loop's 0, and the right to
   * leave SCHED_IDLE was checked for the rule's value), then as the others. False: SCHED_OTHER.
   */
  #adopt(id: string, rule: HelperThreadRule): boolean | null {
    try {
      if (rule.nice !== undefined) this.table.setNice(id, rule.nice);
    } catch {
      return null; // gone, or refused: not ours to manage
    }
    return false;
  }
}

/** Samples until stopped (the function returned); a failed sample (no /proc) stops it. */
export function startIdleGovernor(
  rules: readonly HelperThreadRule[],
  table: IdleThreadTable,
): () => void {
  const governor = new IdleHelperGovernor(rules, table, performance.now());
  const stop = () => {
    clearInterval(timer);
    governor.release();
  };
  const timer = setInterval(() => {
    try {
      governor.tick(performance.now());
    } catch {
      stop(); // e.g. no file descriptor left to list the threads: not idle, for good
    }
  }, LOAD_SAMPLE_MS);
  return stop;
}

/** How many CPUs a `Cpus_allowed_list` of /proc/self/status names ("0-3,6" → 5). */
export function cpusAllowed(status: string): number {
  const list = /^Cpus_allowed_list:\s*(\S+)/im.exec(status)?.[1];
  if (!list) return Infinity;
  return list.split(",").reduce((n, part) => {
    const [lo, hi = lo] = part.split("-").map(Number);
    return n + hi - lo + 1;
  }, 0);
}

/** A uid_map that maps every id to itself: the initial user namespace. */
const INITIAL_USER_NS = /^\s*0\s+0\s+4294967295\s*$/;

/**
 * Whether this process may move a thread from SCHED_IDLE back to SCHED_OTHER at `nice`:
 * CAP_SYS_NICE in its effective set, or an RLIMIT_NICE of at least 20 - nice (sched(7)).
 * `status`, `limits` and `uidMap` are /proc/self/status, limits and uid_map. The kernel checks
 * the capability in the initial user namespace, so in any other (rootless containers) a
 * CapEff bit 23 says nothing and only the limit counts.
 */
export function mayLeaveIdle(
  status: string,
  limits: string,
  nice: number,
  uidMap = "0 0 4294967295",
): boolean {
  const caps = /^CapEff:\s*([0-9a-f]+)/im.exec(status)?.[1];
  const initialNs = INITIAL_USER_NS.test(uidMap.trim());
  if (initialNs && caps && (BigInt(`0x${caps}`) >> BigInt(CAP_SYS_NICE)) & 1n) return true;
  const soft = /^Max nice priority\s+(\S+)/im.exec(limits)?.[1];
  if (soft === "unlimited") return true;
  return soft !== undefined && Number(soft) >= 20 - nice;
}
