// Where to connect for a remote domain: the static route map, then DNS SRV, then the domain itself on
// port 5269 (RFC 6120 §3.2).
import { Resolver } from "node:dns/promises";

export interface ConnectTarget { host: string; port: number }

const DEFAULT_PORT = 5269;

export function parseHostPort(value: string): ConnectTarget {
  const i = value.lastIndexOf(":");
  const host = value.slice(0, i).replace(/^\[(.*)\]$/, "$1");
  return { host, port: Number(value.slice(i + 1)) };
}

/** `dnsServers` ("address:port") replaces the system's resolvers (tests run their own DNS server). */
export async function resolveServer(domain: string, routes: Readonly<Record<string, string>>, dnsServers?: string[]): Promise<ConnectTarget[]> {
  const routed = routes[domain];
  if (routed !== undefined) return [parseHostPort(routed)];
  const resolver = new Resolver({ timeout: 3000, tries: 2 });
  if (dnsServers) resolver.setServers(dnsServers);
  let records;
  try {
    records = await resolver.resolveSrv(`_xmpp-server._tcp.${domain}`);
  } catch {
    // RFC 6120 §3.2.2: no SRV records, so the domain itself on the default port.
    return [{ host: domain, port: DEFAULT_PORT }];
  }
  // RFC 6120 §3.2.1 (RFC 2782): a single record with target "." means the service is not offered.
  if (records.length === 1 && (records[0]!.name === "." || records[0]!.name === "")) return [];
  if (records.length === 0) return [{ host: domain, port: DEFAULT_PORT }];
  // Lowest priority first; within a priority, weighted random order (RFC 2782).
  const keyed = records.map((r) => ({ r, k: r.priority * 1e6 - Math.random() * (r.weight + 1) }));
  keyed.sort((a, b) => a.k - b.k);
  return keyed.map(({ r }) => ({ host: r.name, port: r.port }));
}
