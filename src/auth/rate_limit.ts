/**
 * `auth.connect-rate-per-minute`: a token bucket per source (the IPv4 address
 * of `remoteAddr`, or the /64 network of an IPv6 one: a single host is
 * commonly given a whole /64 and could otherwise rotate through it). A
 * source may make `perMinute` attempts at once, then one every
 * 60/perMinute seconds. Every CONNECT counts (and every SCRAM exchange,
 * re-authentication included), accepted or not, so a password cannot be
 * guessed faster than that. No timers: full buckets are swept lazily when
 * the table has doubled since the last sweep, so the sweeps cost O(1) per
 * attempt however many sources there are.
 */

const SWEEP_AT = 10_000;

export class ConnectRateLimiter {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();
  private readonly perMs: number;
  private sweepAt = SWEEP_AT;

  constructor(private readonly perMinute: number, private readonly now: () => number = Date.now) {
    this.perMs = perMinute / 60_000;
  }

  /** Take one attempt for this address; false when its budget is spent. */
  take(remoteAddr: string): boolean {
    const key = rateKey(remoteAddr);
    const now = this.now();
    const b = this.buckets.get(key);
    if (!b) {
      if (this.buckets.size >= this.sweepAt) {
        this.sweep(now);
        this.sweepAt = Math.max(SWEEP_AT, this.buckets.size * 2);
      }
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

/**
 * The source an attempt is counted against: the IPv4 address, or
 * "a:b:c:d::/64" for an IPv6 one (the textual address when it cannot be read).
 */
export function rateKey(remoteAddr: string): string {
  const host = sourceAddress(remoteAddr);
  if (!host.includes(":")) return host;
  const groups = ipv6Groups(host);
  return groups ? `${groups.slice(0, 4).join(":")}::/64` : host;
}

/** The eight 16-bit groups of an IPv6 address, as lower-case hex without leading zeros. */
function ipv6Groups(address: string): string[] | undefined {
  const zone = address.indexOf("%");
  const text = zone >= 0 ? address.slice(0, zone) : address;
  const halves = text.split("::");
  if (halves.length > 2) return undefined;
  const parts = (half: string) => (half === "" ? [] : half.split(":"));
  const head = parts(halves[0]);
  const tail = halves.length === 2 ? parts(halves[1]) : [];
  // A trailing dotted IPv4 ("::ffff:1.2.3.4") stands for the last two groups.
  const width = (list: string[]) => list.reduce((n, g) => n + (g.includes(".") ? 2 : 1), 0);
  const missing = 8 - width(head) - width(tail);
  if (halves.length === 1 ? missing !== 0 : missing < 1) return undefined;
  const all = [...head, ...new Array(halves.length === 2 ? missing : 0).fill("0"), ...tail];
  const out: string[] = [];
  for (const g of all) {
    if (g.includes(".")) continue; // only the first four groups matter here
    if (!/^[0-9a-f]{1,4}$/i.test(g)) return undefined;
    out.push(parseInt(g, 16).toString(16));
  }
  return out;
}
