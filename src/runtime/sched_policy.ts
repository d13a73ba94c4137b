/**
 * Linux's scheduling policies (include/uapi/linux/sched.h), as the runtimes' FFI setters pass
 * them to libc's sched_setscheduler, and the `struct sched_param` they pass with them.
 */
export const SCHED_OTHER = 0;
export const SCHED_BATCH = 3;
export const SCHED_IDLE = 5;

/** `struct sched_param` with sched_priority 0, the only priority these policies have. */
export const ZERO_SCHED_PARAM = new Int32Array(1);
