// Addresses and network lists (CIDR) for the throttles: which clients count as one, and which are exempt.
import { BlockList, isIP, isIPv4 } from "node:net";

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

/** "192.0.2.0/24", "2001:db8::/32" or a single address, in canonical form; undefined when invalid. */
export function parseNetwork(text: string): { address: string; prefix: number; family: "ipv4" | "ipv6" } | undefined {
  const [addr, bits, extra] = text.trim().split("/");
  if (extra !== undefined || addr === undefined) return undefined;
  const version = isIP(addr);
  if (version === 0) return undefined;
  const max = version === 4 ? 32 : 128;
  const prefix = bits === undefined ? max : /^\d{1,3}$/.test(bits) ? Number(bits) : NaN;
  if (!(prefix >= 0 && prefix <= max)) return undefined;
  return { address: addr.toLowerCase(), prefix, family: version === 4 ? "ipv4" : "ipv6" };
}

/** The config's form of a network ("a.b.c.d/n"), or undefined when it is not one. */
export function canonicalNetwork(text: string): string | undefined {
  const n = parseNetwork(text);
  return n && `${n.address}/${n.prefix}`;
}

export class NetworkList {
  private readonly list = new BlockList();
  private readonly empty: boolean;

  /** Throws on an invalid entry (the config validated them already). */
  constructor(networks: readonly string[]) {
    for (const text of networks) {
      const n = parseNetwork(text);
      if (!n) throw new Error(`not a network: ${text}`);
      this.list.addSubnet(n.address, n.prefix, n.family);
    }
    this.empty = networks.length === 0;
  }

  has(address: string): boolean {
    if (this.empty) return false;
    const a = normalizeAddress(address);
    const version = isIP(a);
    return version !== 0 && this.list.check(a, version === 4 ? "ipv4" : "ipv6");
  }
}
