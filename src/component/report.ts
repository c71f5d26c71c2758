// What `hearth check-config` says about external components (XEP-0114): the listener, the component
// domains and limits, and warnings for settings that expose the component port or make it useless.
import type { Config } from "../config/config.js";

export interface ComponentsReport { lines: string[]; warnings: string[] }

export const isLoopback = (addr: string) => addr === "::1" || addr === "localhost" || /^127\./.test(addr);

export function componentsReport(config: Config): ComponentsReport {
  const cfg = config.components;
  const domains = Object.keys(cfg.secrets);
  const lines: string[] = [];
  const warnings: string[] = [];
  if (cfg.port === null && domains.length === 0) return { lines: ["components: off (components.port is null, no components.secrets)"], warnings };
  lines.push(`components: ${cfg.port === null ? "listener off (components.port is null)" : `${cfg.bind}:${cfg.port}`}`);
  // Secret values are never printed: only how many domains have one.
  lines.push(`  domains: ${domains.length === 0 ? "none" : domains.join(", ")}`);
  lines.push(`  limits: ${cfg.stanzasPerSecond || "unlimited"} stanzas/s per component (burst ${cfg.stanzaBurst}); ` +
    `pinged after ${cfg.keepaliveSeconds} s of silence, dropped ${cfg.pingTimeoutSeconds} s later without an answer`);
  if (cfg.port !== null && domains.length === 0) warnings.push("components: components.port is open but components.secrets is empty: every component is refused");
  if (cfg.port === null && domains.length > 0) {
    lines.push(config.cluster.redisUrl !== null
      ? "  components connect to other nodes of the cluster; this node forwards their domains' stanzas there"
      : "  no component can connect: the domains answer service-unavailable");
    if (config.cluster.redisUrl === null) warnings.push("components: components.secrets is set but components.port is null: no component can connect");
  }
  if (cfg.port !== null && !isLoopback(cfg.bind)) {
    warnings.push(`components: components.bind is ${cfg.bind}, not loopback: XEP-0114 has no TLS, so stanzas and the handshake cross the network in clear text (the secret itself is not sent, but a recorded handshake can be brute-forced); keep it on loopback or a private network`);
  }
  return { lines, warnings };
}
