/**
 * A token bucket that refills lazily from the elapsed time (no timers): it
 * starts full at `capacity`, gains `replenishRate` tokens per second up to
 * `capacity`, and each acquire takes `tokensPerAcquire` if that many are there.
 */
export class TokenBucket {
  readonly capacity: number;
  readonly replenishRate: number;
  readonly tokensPerAcquire: number;
  private tokens: number;
  private last: number;
  private readonly now: () => number;

  constructor(
    capacity: number,
    replenishRate: number,
    tokensPerAcquire = 1,
    now: () => number = Date.now,
  ) {
    this.capacity = capacity;
    this.replenishRate = replenishRate;
    this.tokensPerAcquire = tokensPerAcquire;
    this.now = now;
    this.tokens = capacity;
    this.last = now();
  }

  /** Tokens available now (after refilling). */
  available(): number {
    const t = this.now();
    const elapsed = t - this.last;
    if (elapsed > 0) {
      this.tokens = Math.min(this.capacity, this.tokens + (elapsed * this.replenishRate) / 1000);
    }
    this.last = t; // a clock going backwards refills nothing
    return this.tokens;
  }

  /** Would an acquire succeed now? Takes nothing. */
  canAcquire(): boolean {
    return this.available() >= this.tokensPerAcquire;
  }

  /** Take the tokens of one acquire if there are enough; true when taken. */
  tryAcquire(): boolean {
    if (!this.canAcquire()) return false;
    this.tokens -= this.tokensPerAcquire;
    return true;
  }
}
