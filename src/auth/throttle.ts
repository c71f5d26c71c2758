// The one failed-authentication throttle of every protocol that checks a secret (c2s SASL, mobile login;
// s2s and SASL2 later). RFC 6120 §13.9.6 asks servers to guard against dictionary attacks; the shape
// below does it without handing an attacker a way to lock other people out:
// - per (address, account) pair: every failure delays the pair's next attempt (doubling, capped), and
//   after `perPair` failures in the window the pair is refused until they age out. The owner logging in
//   from another address is another pair, and never waits for someone else's guesses.
// - per address: a higher ceiling over every account tried from it (ejabberd's mod_fail2ban bans an
//   address after 20), so one user's typos behind an office NAT do not lock out the others there.
//   Exempt networks (loopback by default) have no address ceiling; their pairs are still throttled.
// A success clears its pair only: an attacker who owns an account cannot reset the address budget.
import { normalizeAddress, type NetworkList } from "./networks.js";

export interface ThrottleOptions {
  /** Failures of one (address, account) pair within the window before it is refused; 0 = no limit. */
  perPair: number;
  /** Failures from one address (any accounts) within the window before it is refused; 0 = no limit. */
  perAddress: number;
  windowMs: number;
  /** Delay before a pair's next attempt after its first failure, doubled per further failure; 0 = none. */
  delayMs: number;
  maxDelayMs: number;
  /** Addresses without the per-address ceiling. */
  exempt: NetworkList;
  /** Keys kept before old ones are swept (memory bound under a flood of addresses). */
  maxKeys?: number;
}

/** What to do with an attempt: go ahead after `delayMs`, or refuse it for `retryAfterMs`. */
export type Verdict = { allowed: true; delayMs: number } | { allowed: false; retryAfterMs: number };

interface Failures { count: number; since: number; last: number }

class FailureCounter {
  private readonly entries = new Map<string, Failures>();

  constructor(private readonly windowMs: number, private readonly maxKeys: number) {}

  get(key: string, now: number): Failures | undefined {
    const f = this.entries.get(key);
    if (f && now - f.since > this.windowMs) {
      this.entries.delete(key);
      return undefined;
    }
    return f;
  }

  add(key: string, now: number): void {
    const f = this.get(key, now);
    if (f) {
      f.count++;
      f.last = now;
      return;
    }
    if (this.entries.size >= this.maxKeys) this.sweep(now);
    this.entries.set(key, { count: 1, since: now, last: now });
  }

  delete(key: string): void {
    this.entries.delete(key);
  }

  private sweep(now: number): void {
    for (const [k, f] of this.entries) if (now - f.since > this.windowMs) this.entries.delete(k);
    // Still full: drop the oldest entries rather than grow without bound.
    let n = this.entries.size - Math.floor(this.maxKeys / 2);
    for (const k of this.entries.keys()) {
      if (n-- <= 0) break;
      this.entries.delete(k);
    }
  }
}

export class AuthThrottle {
  private readonly pairs: FailureCounter;
  private readonly addresses: FailureCounter;

  constructor(private readonly opts: ThrottleOptions, private readonly now: () => number = Date.now) {
    const maxKeys = opts.maxKeys ?? 100_000;
    this.pairs = new FailureCounter(opts.windowMs, maxKeys);
    this.addresses = new FailureCounter(opts.windowMs, maxKeys);
  }

  /** Whether the address as a whole is refused (before any account is named). */
  addressVerdict(address: string): Verdict {
    const now = this.now();
    const addr = normalizeAddress(address);
    const max = this.opts.perAddress;
    if (max > 0 && !this.opts.exempt.has(addr)) {
      const f = this.addresses.get(addr, now);
      if (f && f.count >= max) return { allowed: false, retryAfterMs: f.since + this.opts.windowMs - now };
    }
    return { allowed: true, delayMs: 0 };
  }

  /** Whether an attempt at `account` (a bare JID) from `address` may go ahead, and after how long. */
  verdict(address: string, account: string): Verdict {
    const byAddress = this.addressVerdict(address);
    if (!byAddress.allowed) return byAddress;
    const now = this.now();
    const f = this.pairs.get(pairKey(address, account), now);
    if (!f) return { allowed: true, delayMs: 0 };
    if (this.opts.perPair > 0 && f.count >= this.opts.perPair) return { allowed: false, retryAfterMs: f.since + this.opts.windowMs - now };
    if (this.opts.delayMs <= 0) return { allowed: true, delayMs: 0 };
    const delay = Math.min(this.opts.delayMs * 2 ** Math.min(f.count - 1, 30), this.opts.maxDelayMs);
    return { allowed: true, delayMs: Math.max(0, f.last + delay - now) };
  }

  /** `account` null: counted against the address only. */
  failed(address: string, account: string | null): void {
    const now = this.now();
    if (account !== null) this.pairs.add(pairKey(address, account), now);
    this.addresses.add(normalizeAddress(address), now);
  }

  succeeded(address: string, account: string): void {
    this.pairs.delete(pairKey(address, account));
  }
}

function pairKey(address: string, account: string): string {
  return `${normalizeAddress(address)} ${account}`;
}
