// External components (XEP-0114): a gateway or bot in another process serves a domain of this server.
// Each domain of `components.secrets` is a component domain with a bus of its own; while its component is
// connected every stanza for the domain goes to it, and what it sends is routed like a stanza from another
// server whose addresses were checked. When no component is connected, an iq or message to the domain
// gets service-unavailable (RFC 6120 §10.5.3.1 style) and presence is dropped.
import net from "node:net";
import type { AddressInfo } from "node:net";
import { defineModule } from "../modules/module.js";
import { xml } from "../xml/element.js";
import { StanzaError } from "../xml/stanza.js";
import type { StanzaEvent } from "../events/hooks.js";
import { ComponentStream, type ComponentContext } from "./stream.js";
import { isLoopback } from "./report.js";

export interface ComponentsService {
  /** The bound listener port; null when components.port is off. */
  readonly port: number | null;
  /** The component domains whose component is connected now. */
  connected(): string[];
}

declare module "../modules/module.js" {
  interface ServiceMap { components: ComponentsService }
}


const KINDS = ["message", "presence", "iq"] as const;
const TARGETS = ["full", "bare", "host"] as const;

export const componentModule = defineModule({
  name: "components",
  xep: [{
    spec: "XEP-0114", title: "Jabber Component Protocol", version: "1.6", status: "complete",
    note: "components.secrets per domain; a second connection that knows the secret replaces the first (conflict); a silent component is pinged and dropped; in a cluster stanzas for the domain go to the node its component is connected to",
  }],
  async setup(api) {
    const cfg = api.config.components;
    const domains = Object.keys(cfg.secrets);
    const connected = new Map<string, ComponentStream>();
    const log = api.log;

    // In a cluster, stanzas for a component domain go to the node its component is connected to (a held
    // key: recorded in the cluster when the component connects, dropped when it leaves).
    const keyOf = (domain: string) => `component:${domain}`;
    const hold = (domain: string, yes: boolean) => api.router.hold(keyOf(domain), yes)
      .catch((err: unknown) => log.warn({ err, domain }, "recording the component's node in the cluster failed"));
    for (const domain of domains) {
      const key = keyOf(domain);
      api.onUnload(api.router.partition(domain, () => key, { held: true }));
      const bus = api.component(domain);
      const toComponent = (ev: StanzaEvent) => {
        const stream = connected.get(domain);
        if (!stream || stream.closed) {
          return ev.stanza.name === "presence" ? true : new StanzaError("service-unavailable", `${domain} is not connected`);
        }
        stream.write(ev.stanza);
        return true;
      };
      for (const kind of KINDS) for (const t of TARGETS) bus.on(`${kind}/${t}` as `${typeof kind}/${typeof t}`, toComponent);
    }

    // The component domains among the server's items (XEP-0030), as Prosody lists its components.
    if (domains.length > 0) {
      api.fold("disco-items", (acc, ctx) => {
        if (ctx.to.local || ctx.node !== null) return acc;
        for (const d of domains) acc.push(xml("item", { jid: d }));
        return acc;
      });
    }

    if (cfg.port === null) {
      api.provide("components", { port: null, connected: () => [] });
      return;
    }

    const streams = new Set<ComponentStream>();
    const ctx: ComponentContext = {
      config: api.config,
      log,
      router: api.router,
      secretOf: (domain) => (Object.hasOwn(cfg.secrets, domain) ? cfg.secrets[domain] : undefined),
      claim: (domain, stream) => {
        const current = connected.get(domain);
        connected.set(domain, stream);
        if (current && current !== stream && !current.closed) {
          log.info({ domain, ip: current.remoteAddress }, "a new component connection replaces the old one");
          current.close("conflict", `a new connection for ${domain} replaced this one`);
        }
        return hold(domain, true);
      },
      release: (domain, stream) => {
        if (connected.get(domain) !== stream) return;
        connected.delete(domain);
        void hold(domain, false);
      },
    };
    const server = net.createServer((socket) => {
      socket.setNoDelay(true);
      socket.setKeepAlive(true, 60_000);
      streams.add(new ComponentStream(ctx, socket, (s) => streams.delete(s)));
    });
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(cfg.port!, cfg.bind, () => { server.off("error", reject); resolve(); });
    });
    // One timer for every component stream (as for s2s): ping the silent ones, drop the dead ones.
    const keepaliveMs = cfg.keepaliveSeconds * 1000;
    const timeoutMs = cfg.pingTimeoutSeconds * 1000;
    const pingFrom = api.config.hosts[0]!;
    const sweep = setInterval(() => {
      const now = Date.now();
      for (const s of streams) s.checkAlive(now, keepaliveMs, timeoutMs, pingFrom);
    }, Math.max(250, Math.min(keepaliveMs, timeoutMs) / 4));
    sweep.unref();
    const port = (server.address() as AddressInfo).port;
    if (!isLoopback(cfg.bind)) log.warn({ bind: cfg.bind }, "the component port is not on loopback: the protocol has no TLS, keep it on a private network");
    api.onUnload(() => {
      clearInterval(sweep);
      server.close();
      for (const s of [...streams]) s.close("system-shutdown");
    });
    log.info({ port, bind: cfg.bind, domains }, "component listener started");
    api.provide("components", { port, connected: () => [...connected.keys()] });
  },
});
