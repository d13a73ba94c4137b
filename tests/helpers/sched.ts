/** A thread's scheduling policy, for tests of the helper-thread rules (Linux). */
import { readFileSync } from "node:fs";

export { SCHED_BATCH, SCHED_IDLE, SCHED_OTHER } from "../../src/runtime/sched_policy.ts";

/** Field 41 of /proc/self/task/<tid>/stat (proc(5)). */
export function policyOf(id: string): number {
  const stat = readFileSync(`/proc/self/task/${id}/stat`, "utf8");
  // Fields after the name, which is in parentheses and may hold spaces: the 3rd is field 3.
  return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[41 - 3]);
}
