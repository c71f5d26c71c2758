// The per-session rate limit of every protocol (c2s stanzas, mobile requests): a token bucket, so a client
// over its rate is slowed down rather than disconnected.
export class TokenBucket {
  private tokens: number;
  private last = Date.now();

  /** `rate` tokens a second up to `burst`; a rate of 0 or less means no limit. */
  constructor(private readonly rate: number, private readonly burst: number) {
    this.tokens = burst;
  }

  /** Takes a token and returns 0, or returns how many ms until one is there (and takes nothing). */
  take(now = Date.now()): number {
    if (this.rate <= 0) return 0;
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.last) * this.rate) / 1000);
    this.last = now;
    if (this.tokens >= 1) {
      this.tokens -= 1;
      return 0;
    }
    return Math.ceil(((1 - this.tokens) * 1000) / this.rate);
  }
}
