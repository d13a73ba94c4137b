/**
 * SCHED_BATCH for one thread (see helper_threads.ts) through libc's sched_setscheduler:
 * Node's API has no call for a thread's scheduling policy, so this is Deno's FFI.
 */
import { denoLibc } from "./libc_deno.ts";
import { SCHED_BATCH, ZERO_SCHED_PARAM } from "./sched_policy.ts";

/** A setter that throws when refused, or undefined where Deno cannot reach libc. */
export function denoThreadBatch(): ((tid: number) => void) | undefined {
  const libc = denoLibc({
    sched_setscheduler: { parameters: ["i32", "i32", "buffer"], result: "i32" },
  });
  if (!libc) return undefined; // the helpers keep their policy
  return (tid) => {
    const r = libc.sched_setscheduler(tid, SCHED_BATCH, ZERO_SCHED_PARAM);
    if (r !== 0) throw new Error(`sched_setscheduler(${tid}, SCHED_BATCH) returned ${r}`);
  };
}
