/**
 * SCHED_BATCH for one thread (see helper_threads.ts) through libc's sched_setscheduler:
 * Node's API has no call for a thread's scheduling policy, so this is Deno's FFI.
 */
import { denoLibc } from "./libc_deno.ts";

/** Linux's SCHED_BATCH (include/uapi/linux/sched.h). */
const SCHED_BATCH = 3;

/** `struct sched_param` with sched_priority 0, the only priority a batch thread has. */
const ZERO_SCHED_PARAM = new Int32Array(1);

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
