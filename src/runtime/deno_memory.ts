/**
 * Deno: give memory back once a burst of new connections is over.
 *
 * Why: accepting thousands of connections (a gateway's devices reconnecting at once) grows V8's
 * young generation to tens of MB and promotes the handshakes' garbage into the old generation;
 * an idle broker then allocates too little for V8 to ever run the major GC that would return
 * it, so the resident size stays where the storm left it. 10,000 idle connections held 7.1 KB
 * each; after one full GC and glibc's `malloc_trim` about 4.3 KB (bench/notes/deno.md).
 *
 * The price is one full GC, a pause of 80-200 ms with 10,000 connections on the busy 2-core
 * bench machine, once per burst: after at least BURST_CONNECTIONS connections opened or closed
 * (closing 10,000 makes as much garbage), at the first RECLAIM_CHECK_MS without one and with
 * the process using under BUSY_SHARE of a CPU (a broker carrying traffic would stall every
 * client for the pause, and allocates enough for V8's own, incremental, major GCs to free the
 * burst's garbage anyway); no timer runs otherwise. Once after start-up too
 * (what loading and configuring left: idle RSS 63.6 -> 61 MB). Without the permission it needs
 * (`--allow-ffi` for `malloc_trim`) that step is skipped, never prompted for.
 */
import process from "node:process";
import v8 from "node:v8";
import vm from "node:vm";
import { denoLibc } from "./libc_deno.ts";

export const BURST_CONNECTIONS = 1000;
export const RECLAIM_CHECK_MS = 1000;
/** Above this share of one CPU over the last check the broker is busy: the reclaim waits. */
export const BUSY_SHARE = 0.1;
/**
 * A burst that goes on after its reclaim (the clients stalled for a second, e.g. on a busy
 * machine) leaves its rest as garbage when fewer than BURST_CONNECTIONS follow: within
 * FOLLOW_UP_MS of a burst's reclaim, FOLLOW_UP_CONNECTIONS more get one more reclaim.
 */
export const FOLLOW_UP_CONNECTIONS = 100;
const FOLLOW_UP_MS = 30_000;
let followUpUntil = 0;

let churnSinceReclaim = 0;
let churnSinceCheck = 0;
let timer: ReturnType<typeof setInterval> | undefined;

/** Once, shortly after start-up: return what loading and configuring left behind. */
export function reclaimAfterStart(delayMs = 500): void {
  if (startScheduled) return;
  startScheduled = true;
  Deno.unrefTimer(setTimeout(reclaimMemory, delayMs));
}
let startScheduled = false;

/** Count one connection accepted (by the TCP and TLS listeners) or ended (its Conn). */
export function connectionChurn(): void {
  churnSinceCheck++;
  if (timer !== undefined) return;
  const need = followUpUntil > 0 && Date.now() < followUpUntil
    ? FOLLOW_UP_CONNECTIONS
    : BURST_CONNECTIONS;
  if (++churnSinceReclaim < need) return;
  lastCheck = cpuNow();
  const t = timer = setInterval(checkQuiet, RECLAIM_CHECK_MS);
  Deno.unrefTimer(t);
}

/** Process CPU time and wall time, µs. */
function cpuNow(): { cpu: number; wall: number } {
  const u = process.cpuUsage();
  return { cpu: u.user + u.system, wall: performance.now() * 1000 };
}
let lastCheck = { cpu: 0, wall: 0 };
let busyDeferrals = 0;
/** How many checks found the process busy and put the reclaim off (for tests). */
export const reclaimsDeferred = (): number => busyDeferrals;

function checkQuiet(): void {
  const now = cpuNow();
  const share = (now.cpu - lastCheck.cpu) / Math.max(1, now.wall - lastCheck.wall);
  lastCheck = now;
  if (churnSinceCheck > 0) { // still busy: wait for a quiet interval
    churnSinceCheck = 0;
    return;
  }
  if (share > BUSY_SHARE) return void busyDeferrals++; // traffic: not now
  clearInterval(timer);
  timer = undefined;
  // A burst's reclaim allows one follow-up; the follow-up none.
  followUpUntil = Date.now() < followUpUntil ? 0 : Date.now() + FOLLOW_UP_MS;
  churnSinceReclaim = 0;
  afterBursts++;
  reclaimMemory();
}

let afterBursts = 0;
/** How many bursts of connections were followed by a reclaim (for tests). */
export const burstReclaims = (): number => afterBursts;

/** Run a full GC, then hand freed malloc pages back to the OS. */
export function reclaimMemory(): void {
  fullGc()?.();
  mallocTrim()?.();
}

let gcFn: (() => void) | null | undefined;
function fullGc(): (() => void) | null {
  if (gcFn !== undefined) return gcFn;
  try {
    // `gc` exists only in contexts made after the flag is set.
    v8.setFlagsFromString("--expose-gc");
    const gc = vm.runInNewContext("gc");
    gcFn = typeof gc === "function" ? gc as () => void : null;
  } catch {
    gcFn = null;
  }
  return gcFn;
}

let trimFn: (() => void) | null | undefined;
function mallocTrim(): (() => void) | null {
  if (trimFn !== undefined) return trimFn;
  const libc = denoLibc({ malloc_trim: { parameters: ["usize"], result: "i32" } });
  trimFn = libc ? () => void libc.malloc_trim(0n) : null; // not glibc: nothing to trim
  return trimFn;
}
