/**
 * `auth.connect-rate-per-minute`: a token bucket per source address (the IP
 * of `remoteAddr`, without the port). A source may make `perMinute` attempts
 * at once, then one every 60/perMinute seconds. Every CONNECT counts (and
 * every SCRAM exchange, re-authentication included), accepted or not, so a
 * password cannot be guessed faster than that. No timers: full buckets are
 * swept lazily when the table grows.
 */

const SWEEP_AT = 10_000;

export class ConnectRateLimiter {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();
  private readonly perMs: number;

  constructor(private readonly perMinute: number, private readonly now: () => number = Date.now) {
    this.perMs = perMinute / 60_000;
  }

  /** Take one attempt for this address; false when its budget is spent. */
  take(remoteAddr: string): boolean {
    const key = sourceAddress(remoteAddr);
    const now = this.now();
    const b = this.buckets.get(key);
    if (!b) {
      if (this.buckets.size >= SWEEP_AT) this.sweep(now);
      this.buckets.set(key, { tokens: this.perMinute - 1, at: now });
      return true;
    }
    b.tokens = Math.min(this.perMinute, b.tokens + (now - b.at) * this.perMs);
    b.at = now;
    if (b.tokens < 1) return false;
    b.tokens -= 1;
    return true;
  }

  /** Forget sources whose bucket has refilled. */
  private sweep(now: number): void {
    for (const [k, b] of this.buckets) {
      if (b.tokens + (now - b.at) * this.perMs >= this.perMinute) this.buckets.delete(k);
    }
  }
}

/** "1.2.3.4:5" → "1.2.3.4", "[::1]:5" → "::1", "[::ffff:1.2.3.4]:5" → "1.2.3.4". */
export function sourceAddress(remoteAddr: string): string {
  let host = remoteAddr;
  if (host.startsWith("[")) {
    const end = host.indexOf("]");
    host = end > 0 ? host.slice(1, end) : host;
  } else if (host.indexOf(":") === host.lastIndexOf(":") && host.includes(":")) {
    host = host.slice(0, host.indexOf(":"));
  }
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(host);
  return mapped ? mapped[1] : host.toLowerCase();
}
