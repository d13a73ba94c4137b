/**
 * setTimeout for delays past 2^31-1 ms (about 24.8 days): Deno and Bun fire
 * such timers after 1 ms, which would end a 30-day session at once. The timer
 * re-arms in steps until its time has come.
 */
const MAX_DELAY = 0x7fffffff;

export interface LongTimer {
  handle: ReturnType<typeof setTimeout>;
}

export function setLongTimeout(fn: () => void, ms: number): LongTimer {
  const at = Date.now() + ms;
  const t = {} as LongTimer;
  const arm = () => {
    const left = at - Date.now();
    t.handle = left > MAX_DELAY ? setTimeout(arm, MAX_DELAY) : setTimeout(fn, Math.max(0, left));
  };
  arm();
  return t;
}

export function clearLongTimeout(t: LongTimer | undefined): void {
  if (t) clearTimeout(t.handle);
}
