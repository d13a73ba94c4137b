/**
 * Event-loop delay, measured the portable way: a timer that should fire every
 * `intervalMs` notes how late it fires. (node:perf_hooks'
 * monitorEventLoopDelay is not on every runtime.) One timer for the broker,
 * only while the HTTP endpoint runs.
 */
export class LoopDelayMonitor {
  /** Lateness of the last tick, ms. */
  last = 0;
  /** Largest lateness since the previous `takeMax()`, ms. */
  private max = 0;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private stopped = false;

  constructor(private readonly intervalMs = 500) {}

  start(): void {
    const tick = (due: number) => {
      if (this.stopped) return;
      const late = Math.max(0, Date.now() - due);
      this.last = late;
      if (late > this.max) this.max = late;
      this.schedule(tick);
    };
    this.schedule(tick);
  }

  private schedule(tick: (due: number) => void): void {
    const due = Date.now() + this.intervalMs;
    this.timer = setTimeout(() => tick(due), this.intervalMs);
  }

  /** The largest delay seen since the last call (a scrape), then start over. */
  takeMax(): number {
    const m = Math.max(this.max, this.last);
    this.max = 0;
    return m;
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
  }
}
