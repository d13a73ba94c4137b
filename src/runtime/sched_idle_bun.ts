/**
 * SCHED_IDLE and back for one thread (idle_helpers.ts) through libc's sched_setscheduler, with
 * Bun's FFI: Node's API has no call for a thread's scheduling policy.
 */
import { dlopen, FFIType } from "bun:ffi";
import process from "node:process";
import { SCHED_IDLE, SCHED_OTHER, ZERO_SCHED_PARAM } from "./sched_policy.ts";

/**
 * A setter that throws when refused, or undefined where libc cannot be reached (not Linux, not
 * glibc). Going back to SCHED_OTHER keeps the thread's nice value.
 */
export function bunThreadIdle(): ((tid: number, idle: boolean) => void) | undefined {
  if (process.platform !== "linux") return undefined;
  let setScheduler: (tid: number, policy: number, param: Int32Array) => number;
  try {
    const libc = dlopen("libc.so.6", {
      sched_setscheduler: { args: [FFIType.i32, FFIType.i32, FFIType.ptr], returns: FFIType.i32 },
    });
    setScheduler = libc.symbols.sched_setscheduler as typeof setScheduler;
  } catch {
    return undefined; // musl, or no libc.so.6: the helpers keep their nice value
  }
  return (tid, idle) => {
    const r = setScheduler(tid, idle ? SCHED_IDLE : SCHED_OTHER, ZERO_SCHED_PARAM);
    if (r !== 0) {
      throw new Error(
        `sched_setscheduler(${tid}, ${idle ? "SCHED_IDLE" : "SCHED_OTHER"}) returned ${r}`,
      );
    }
  };
}
