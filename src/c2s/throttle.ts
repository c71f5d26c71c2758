// Failed-authentication throttling per IP address and per account (RFC 6120 §13.9.6: guard against
// dictionary attacks). A key that failed `maxFailures` times within the window is refused until it ages out.
export class FailureThrottle {
  private readonly failures = new Map<string, { count: number; since: number }>();

  constructor(private readonly maxFailures: number, private readonly windowMs: number, private readonly maxKeys = 100_000) {}

  blocked(key: string, now = Date.now()): boolean {
    if (this.maxFailures <= 0) return false; // 0: no limit (auth.maxFailures)
    const f = this.failures.get(key);
    if (!f) return false;
    if (now - f.since > this.windowMs) {
      this.failures.delete(key);
      return false;
    }
    return f.count >= this.maxFailures;
  }

  fail(key: string, now = Date.now()): void {
    if (this.maxFailures <= 0) return;
    const f = this.failures.get(key);
    if (!f || now - f.since > this.windowMs) {
      if (this.failures.size >= this.maxKeys) this.sweep(now);
      this.failures.set(key, { count: 1, since: now });
    } else f.count++;
  }

  succeed(key: string): void {
    this.failures.delete(key);
  }

  private sweep(now: number): void {
    for (const [k, f] of this.failures) if (now - f.since > this.windowMs) this.failures.delete(k);
    // Still full: drop the oldest entries rather than grow without bound.
    if (this.failures.size >= this.maxKeys) {
      let n = this.failures.size - this.maxKeys / 2;
      for (const k of this.failures.keys()) { if (n-- <= 0) break; this.failures.delete(k); }
    }
  }
}
