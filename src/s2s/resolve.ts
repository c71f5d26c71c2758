// Where to connect for a remote domain: the static route map, then DNS SRV for direct TLS and STARTTLS
// together (XEP-0368), then the domain itself on port 5269 (RFC 6120 §3.2).
import { Resolver } from "node:dns/promises";
import type { SrvRecord } from "node:dns";

/** `directTls`: TLS from the first byte (XEP-0368) instead of STARTTLS. */
export interface ConnectTarget { host: string; port: number; directTls: boolean }

const DEFAULT_PORT = 5269;
const DIRECT_TLS_PREFIX = "tls://";

/** An s2s.routes value: "host:port" (STARTTLS) or "tls://host:port" (direct TLS). */
export function parseRoute(value: string): ConnectTarget {
  const directTls = value.startsWith(DIRECT_TLS_PREFIX);
  const hostPort = directTls ? value.slice(DIRECT_TLS_PREFIX.length) : value;
  const i = hostPort.lastIndexOf(":");
  const host = hostPort.slice(0, i).replace(/^\[(.*)\]$/, "$1");
  return { host, port: Number(hostPort.slice(i + 1)), directTls };
}

/** The records of one SRV name: null when there are none, [] when the service is explicitly not offered. */
async function lookup(resolver: Resolver, name: string): Promise<SrvRecord[] | null> {
  let records: SrvRecord[];
  try {
    records = await resolver.resolveSrv(name);
  } catch {
    return null;
  }
  // RFC 2782 (RFC 6120 §3.2.1): a single record with target "." means the service is not offered.
  if (records.length === 1 && (records[0]!.name === "." || records[0]!.name === "")) return [];
  return records.length === 0 ? null : records;
}

/** `dnsServers` ("address:port") replaces the system's resolvers (tests run their own DNS server). */
export async function resolveServer(domain: string, routes: Readonly<Record<string, string>>, dnsServers?: string[]): Promise<ConnectTarget[]> {
  const routed = routes[domain];
  if (routed !== undefined) return [parseRoute(routed)];
  const resolver = new Resolver({ timeout: 3000, tries: 2 });
  if (dnsServers) resolver.setServers(dnsServers);
  const [startTls, directTls] = await Promise.all([
    lookup(resolver, `_xmpp-server._tcp.${domain}`),
    lookup(resolver, `_xmpps-server._tcp.${domain}`),
  ]);
  // RFC 6120 §3.2.2: no STARTTLS records (and no direct TLS ones), so the domain itself on the default port.
  if (startTls === null && (directTls === null || directTls.length === 0)) return [{ host: domain, port: DEFAULT_PORT, directTls: false }];
  // XEP-0368 §3: both kinds in one list, lowest priority first, weighted random order within a priority
  // (RFC 2782); on equal footing direct TLS goes first, as it saves a round trip.
  const all = [...(startTls ?? []).map((r) => ({ r, directTls: false })), ...(directTls ?? []).map((r) => ({ r, directTls: true }))];
  const keyed = all.map((t) => ({ t, k: t.r.priority * 1e6 - Math.random() * (t.r.weight + 1) - (t.directTls ? 0.5 : 0) }));
  keyed.sort((a, b) => a.k - b.k);
  return keyed.map(({ t }) => ({ host: t.r.name, port: t.r.port, directTls: t.directTls }));
}
