// What `hearth check-config` says about federation: listeners, the certificate each served domain shows
// other servers, the policy, routes and limits, and warnings for settings that make federation fail or
// weaker than intended.
import { X509Certificate } from "node:crypto";
import { readFileSync } from "node:fs";
import type { Config } from "../config/config.js";

export interface FederationReport { lines: string[]; warnings: string[] }

/** The certificate file configured for `domain` (tls.certs, a parent domain's entry, or tls.cert). */
function certificateFileFor(config: Config, domain: string): string | null {
  const exact = config.tls.certs[domain];
  if (exact) return exact.cert;
  const dot = domain.indexOf(".");
  const parent = dot >= 0 ? config.tls.certs[domain.slice(dot + 1)] : undefined;
  return parent?.cert ?? config.tls.cert;
}

function describeCertificate(file: string, domain: string, now: Date, warnings: string[]): string {
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(readFileSync(file));
  } catch (err) {
    warnings.push(`s2s: cannot read the certificate of ${domain} (${file}): ${(err as Error).message}`);
    return `${file} (unreadable)`;
  }
  if (cert.checkHost(domain) === undefined) warnings.push(`s2s: the certificate ${file} does not name ${domain}: peers will not accept it for SASL EXTERNAL, only dialback`);
  if (new Date(cert.validTo) < now) warnings.push(`s2s: the certificate ${file} for ${domain} expired on ${cert.validTo}`);
  const issuer = cert.issuer === cert.subject ? "self-signed" : `issued by ${cert.issuer.replace(/\n/g, ", ")}`;
  return `${file} (${issuer}, valid until ${cert.validTo})`;
}

export function federationReport(config: Config, now = new Date()): FederationReport {
  const s2s = config.s2s;
  const lines: string[] = [];
  const warnings: string[] = [];
  if (s2s.port === null && s2s.directTlsPort === null) {
    return { lines: ["federation: off (s2s.port and s2s.directTlsPort are null)"], warnings };
  }
  const listener = (p: number | null, what: string) => (p === null ? `${what} off` : `${what} ${s2s.bind}:${p}`);
  lines.push(`federation: ${listener(s2s.port, "STARTTLS")}, ${listener(s2s.directTlsPort, "direct TLS")}`);
  for (const domain of config.hosts) {
    const file = certificateFileFor(config, domain);
    if (file === null) {
      lines.push(`  certificate of ${domain}: none configured (a self-signed one is generated)`);
      warnings.push(`s2s: no certificate configured for ${domain}: other servers can only authenticate it with dialback, and those that require valid certificates refuse it`);
    } else {
      lines.push(`  certificate of ${domain}: ${describeCertificate(file, domain, now, warnings)}`);
    }
  }
  const auth = s2s.requireValidCertificates ? "SASL EXTERNAL only (valid certificates required)" : "SASL EXTERNAL when the peer's certificate validates, else dialback";
  lines.push(`  authentication of peers: ${auth}; TLS ${s2s.requireTls ? "required" : "optional"}`);
  lines.push(`  trusted CAs for peer certificates: ${s2s.caFile ?? "Node's bundled roots"}`);
  lines.push(`  dialback secret: ${s2s.dialbackSecret !== null ? "configured" : "generated in the data directory"}`);
  lines.push(`  policy: ${s2s.allow.length > 0 ? `only ${s2s.allow.join(", ")}` : "any domain"}${s2s.deny.length > 0 ? `, never ${s2s.deny.join(", ")}` : ""}`);
  const routes = Object.entries(s2s.routes);
  lines.push(`  routes: ${routes.length === 0 ? "none (DNS SRV _xmpps-server/_xmpp-server, then <domain>:5269)" : routes.map(([d, r]) => `${d} → ${r}`).join(", ")}`);
  lines.push(`  limits: ${s2s.maxStanzaBytesPreAuth} bytes per element before authentication, ${s2s.stanzasPerSecond || "unlimited"} stanzas/s per stream (burst ${s2s.stanzaBurst}), ` +
    `${s2s.maxStreamsPerIp || "unlimited"} connections per address, ${s2s.maxStreamsPerDomain || "unlimited"} streams per domain`);

  if (s2s.requireValidCertificates && s2s.caFile === null) {
    warnings.push("s2s: requireValidCertificates with no s2s.caFile: only peers with certificates from public CAs (Node's bundled roots) are accepted");
  }
  if (!s2s.requireTls) warnings.push("s2s: requireTls is false: server connections may carry stanzas in clear text");
  if (config.cluster.redisUrl !== null && s2s.dialbackSecret === null) {
    warnings.push("s2s: a cluster without s2s.dialbackSecret: each node generates its own secret, so a node cannot verify the dialback keys of another, nor accept the channel-bound FAST tokens (HT-SHA-256-EXPR/-ENDP) another issued; set the same secret on every node");
  }
  for (const d of s2s.allow.filter((d) => s2s.deny.includes(d))) warnings.push(`s2s: ${d} is in both s2s.allow and s2s.deny: it is denied`);
  for (const d of Object.keys(s2s.routes).filter((d) => config.hosts.includes(d))) warnings.push(`s2s: s2s.routes names ${d}, a domain served here: the route is never used`);
  return { lines, warnings };
}
