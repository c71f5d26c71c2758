// Federation (RFC 6120 server-to-server): the listener for streams other servers open to us, one outgoing
// stream per (local domain, remote domain), and `route/remote`, which sends stanzas for domains not served
// here over them. Stanzas that cannot go out bounce to their sender, never vanish (RFC 6120 §10.4.3).
import net from "node:net";
import type { AddressInfo } from "node:net";
import type { Config } from "../config/config.js";
import type { Logger } from "../log.js";
import { PHASES, type HookBuses, type StanzaEvent } from "../events/hooks.js";
import type { Router } from "../router/router.js";
import type { TlsMaterial } from "../config/tls.js";
import { StanzaError, type StanzaErrorCondition } from "../xml/stanza.js";
import type { Element } from "../xml/element.js";
import { buildS2sTls } from "./certs.js";
import { loadDialbackSecret } from "./dialback.js";
import { InboundStream } from "./inbound.js";
import { OutboundStream, type DialbackAnswer } from "./outbound.js";
import type { S2sContext } from "./context.js";

export interface S2sStreamInfo { local: string; remote: string; method: "external" | "dialback" | null; ready: boolean; directTls: boolean }

export interface S2s {
  /** The bound STARTTLS port, or null without that listener. */
  readonly port: number | null;
  /** The bound direct TLS port (XEP-0368), or null without that listener. */
  readonly directTlsPort: number | null;
  /** Outgoing streams, for operations and tests. */
  outgoing(): S2sStreamInfo[];
  /** Incoming streams with their authenticated domain pairs. */
  incoming(): Array<{ peer: string | undefined; method: "external" | "dialback" | null; pairs: string[]; directTls: boolean }>;
  stop(): Promise<void>;
}

export async function startS2s(deps: { config: Config; log: Logger; hooks: HookBuses; router: Router; tlsMaterial: Map<string, TlsMaterial> }): Promise<S2s> {
  const { config, hooks, router } = deps;
  const log = deps.log.child({ component: "s2s" });
  const cfg = config.s2s;
  // Without a listener no peer could verify our dialback keys: federation is off, and the router's
  // fallback answers remote-server-not-found.
  if (cfg.port === null && cfg.directTlsPort === null) return { port: null, directTlsPort: null, outgoing: () => [], incoming: () => [], stop: async () => {} };
  const allow = new Set(cfg.allow);
  const deny = new Set(cfg.deny);
  const outgoing = new Map<string, OutboundStream>();
  const incoming = new Set<InboundStream>();

  /**
   * After a failed attempt, stanzas for that pair bounce at once for a while (doubling from 1 s up to a
   * minute) instead of each one opening another connection to a server that is down.
   */
  const backoff = new Map<string, { until: number; delay: number; condition: "remote-server-not-found" | "remote-server-timeout"; text: string }>();
  const backedOff = (key: string) => {
    const b = backoff.get(key);
    return b && b.until > Date.now() ? b : undefined;
  };
  const outboundEvents = {
    closed: (s: OutboundStream) => {
      const key = `${s.local} ${s.remote}`;
      if (outgoing.get(key) === s) outgoing.delete(key);
      if (!s.failure) return backoff.delete(key);
      const delay = Math.min(2 * (backoff.get(key)?.delay ?? 500), 60_000);
      backoff.set(key, { until: Date.now() + delay, delay, ...s.failure });
    },
    bounce: (stanzas: Element[], condition: StanzaErrorCondition, text: string) => {
      for (const stanza of stanzas) router.bounce(stanza, condition, text);
    },
  };
  const streamTo = (local: string, remote: string): OutboundStream => {
    const key = `${local} ${remote}`;
    let s = outgoing.get(key);
    if (!s || s.closed) outgoing.set(key, (s = OutboundStream.open(ctx, local, remote, outboundEvents)));
    return s;
  };

  const ctx: S2sContext = {
    config, log, hooks, router,
    tls: await buildS2sTls(config, deps.tlsMaterial),
    secret: await loadDialbackSecret(config),
    isServed: (domain) => hooks.of(domain) !== undefined,
    allowed: (domain) => !deny.has(domain) && (allow.size === 0 || allow.has(domain)),
    incomingStreams: () => [...incoming],
    verifyKey: (local, remote, id, key): Promise<DialbackAnswer> => {
      const b = backedOff(`${local} ${remote}`);
      return b ? Promise.resolve(b.condition) : streamTo(local, remote).verify(id, key);
    },
  };

  const routeRemote = (ev: StanzaEvent) => {
    const local = ev.from.domain;
    const remote = ev.to.domain;
    // Only our own domains send over federation; anything else would make us an open relay.
    if (!ctx.isServed(local)) return new StanzaError("not-allowed", "stanzas between two other servers are not relayed");
    if (!ctx.allowed(remote)) return new StanzaError("remote-server-not-found", `federation with ${remote} is not allowed`);
    const b = backedOff(`${local} ${remote}`);
    if (b) return new StanzaError(b.condition, b.text);
    if (!streamTo(local, remote).send(ev.stanza)) return new StanzaError("resource-constraint", `too many stanzas waiting for ${remote}`);
    return true;
  };
  const undoRoute = hooks.server.on("route/remote", routeRemote, PHASES.handle);

  const perIp = new Map<string, number>();
  const maxPerIp = cfg.maxStreamsPerIp;
  /** Every accepted connection, STARTTLS or direct TLS, is counted against its address. */
  const accept = (socket: net.Socket, directTls: boolean) => {
    socket.setNoDelay(true);
    socket.setKeepAlive(true, 60_000);
    const addr = socket.remoteAddress ?? "unknown";
    const n = (perIp.get(addr) ?? 0) + 1;
    perIp.set(addr, n);
    const s = new InboundStream(ctx, socket, directTls, (closed) => {
      incoming.delete(closed);
      const m = (perIp.get(addr) ?? 1) - 1;
      if (m <= 0) perIp.delete(addr); else perIp.set(addr, m);
    });
    incoming.add(s);
    if (maxPerIp > 0 && n > maxPerIp) s.close("policy-violation", `more than ${maxPerIp} connections from ${addr}`);
  };
  const listen = async (srv: net.Server, port: number) => {
    await new Promise<void>((resolve, reject) => {
      srv.once("error", reject);
      srv.listen(port, cfg.bind, () => { srv.off("error", reject); resolve(); });
    });
    return srv;
  };
  const servers: net.Server[] = [];
  const portOf = (srv: net.Server | null) => (srv?.address() as AddressInfo | null)?.port ?? null;
  let startTlsServer: net.Server | null = null;
  let directTlsServer: net.Server | null = null;
  try {
    if (cfg.port !== null) servers.push((startTlsServer = await listen(net.createServer((socket) => accept(socket, false)), cfg.port)));
    if (cfg.directTlsPort !== null) servers.push((directTlsServer = await listen(ctx.tls.directServer((socket) => accept(socket, true)), cfg.directTlsPort)));
  } catch (err) {
    undoRoute();
    for (const srv of servers) srv.close();
    throw err;
  }

  // One timer for every stream (DESIGN: no timer per idle connection): keepalives, idle and auth timeouts.
  const keepaliveMs = cfg.keepaliveSeconds * 1000;
  const idleMs = cfg.idleTimeoutSeconds * 1000;
  const authMs = config.limits.authTimeoutSeconds * 1000;
  const sweep = setInterval(() => {
    const now = Date.now();
    for (const s of outgoing.values()) {
      if (s.ready && now - s.lastStanza > idleMs) { s.close(); continue; }
      if (now - s.lastWrite > keepaliveMs) s.keepalive();
    }
    for (const s of incoming) {
      if (!s.authenticated && now - s.openedAt > authMs) { s.close("connection-timeout", "authentication took too long"); continue; }
      if (now - s.lastRead > Math.max(idleMs, keepaliveMs * 3)) { s.close("connection-timeout", "the connection is silent"); continue; }
      if (now - s.lastWrite > keepaliveMs) s.keepalive();
    }
  }, Math.max(250, Math.min(keepaliveMs, idleMs, authMs) / 4));
  sweep.unref();

  const port = portOf(startTlsServer);
  const directTlsPort = portOf(directTlsServer);
  log.info({ port, directTlsPort, routes: Object.keys(cfg.routes) }, "s2s started");
  return {
    port,
    directTlsPort,
    outgoing: () => [...outgoing.values()].map((s) => ({ local: s.local, remote: s.remote, method: s.method, ready: s.ready, directTls: s.directTls })),
    incoming: () => [...incoming].map((s) => ({ peer: s.peerDomain, method: s.method, pairs: [...s.pairs], directTls: s.directTls })),
    async stop() {
      clearInterval(sweep);
      undoRoute();
      const closing = Promise.all(servers.map((srv) => new Promise<void>((r) => srv.close(() => r()))));
      for (const s of [...outgoing.values(), ...incoming]) s.close("system-shutdown");
      await Promise.race([closing, new Promise((r) => setTimeout(r, 2000))]);
    },
  };
}
