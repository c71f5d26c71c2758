// Who may register in-band: the configured policy, and a per-address rate limit (auth.exemptNetworks exempt).
import { isLoopback, normalizeAddress, NetworkList } from "../../src/auth/networks.js";

export { isLoopback, normalizeAddress };

export type RegistrationPolicy = "open" | "closed" | "localhost";

export function policyAllows(policy: RegistrationPolicy, remoteAddress: string): boolean {
  if (policy === "open") return true;
  if (policy === "localhost") return isLoopback(remoteAddress);
  return false;
}

const HOUR_MS = 3_600_000;

/** Successful registrations per address over a sliding hour; addresses in `exemptNetworks` are not limited. */
export class RegistrationLimiter {
  private readonly byAddress = new Map<string, number[]>();
  private readonly exempt: NetworkList;

  constructor(private readonly perHour: number, exemptNetworks: readonly string[] = [], private readonly now: () => number = Date.now) {
    this.exempt = new NetworkList(exemptNetworks);
  }

  private recent(address: string): number[] {
    const key = normalizeAddress(address);
    const since = this.now() - HOUR_MS;
    const list = (this.byAddress.get(key) ?? []).filter((t) => t > since);
    if (list.length) this.byAddress.set(key, list);
    else this.byAddress.delete(key);
    return list;
  }

  allowed(address: string): boolean {
    return this.perHour <= 0 || this.exempt.has(address) || this.recent(address).length < this.perHour;
  }

  record(address: string): void {
    if (this.perHour <= 0 || this.exempt.has(address)) return;
    const list = this.recent(address);
    list.push(this.now());
    this.byAddress.set(normalizeAddress(address), list);
  }

  /** Drops addresses with nothing in the last hour. */
  sweep(): void {
    for (const key of [...this.byAddress.keys()]) this.recent(key);
  }
}
