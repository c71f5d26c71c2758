// Who may register in-band: the configured policy, and a per-address rate limit.
import { isIPv4 } from "node:net";

export type RegistrationPolicy = "open" | "closed" | "localhost";

/** "::ffff:192.0.2.1" → "192.0.2.1", so one client counts once whichever socket family it used. */
export function normalizeAddress(address: string): string {
  const m = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  return m ? m[1] : address;
}

/** 127.0.0.0/8, ::1 and their IPv4-mapped forms. */
export function isLoopback(address: string): boolean {
  const a = normalizeAddress(address);
  if (isIPv4(a)) return a.startsWith("127.");
  return a === "::1" || a === "0:0:0:0:0:0:0:1";
}

export function policyAllows(policy: RegistrationPolicy, remoteAddress: string): boolean {
  if (policy === "open") return true;
  if (policy === "localhost") return isLoopback(remoteAddress);
  return false;
}

const HOUR_MS = 3_600_000;

/** Successful registrations per address over a sliding hour. */
export class RegistrationLimiter {
  private readonly byAddress = new Map<string, number[]>();

  constructor(private readonly perHour: number, private readonly now: () => number = Date.now) {}

  private recent(address: string): number[] {
    const key = normalizeAddress(address);
    const since = this.now() - HOUR_MS;
    const list = (this.byAddress.get(key) ?? []).filter((t) => t > since);
    if (list.length) this.byAddress.set(key, list);
    else this.byAddress.delete(key);
    return list;
  }

  allowed(address: string): boolean {
    return this.perHour <= 0 || this.recent(address).length < this.perHour;
  }

  record(address: string): void {
    if (this.perHour <= 0) return;
    const list = this.recent(address);
    list.push(this.now());
    this.byAddress.set(normalizeAddress(address), list);
  }

  /** Drops addresses with nothing in the last hour. */
  sweep(): void {
    for (const key of [...this.byAddress.keys()]) this.recent(key);
  }
}
