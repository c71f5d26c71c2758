// Client listeners: TCP with STARTTLS (RFC 6120 §5), direct TLS (XEP-0368), WebSocket (RFC 7395) and BOSH
// (XEP-0206, bosh.ts), all feeding the same C2sSession. Connection limits are enforced here; timeouts by
// one shared sweep.
import net from "node:net";
import tls from "node:tls";
import http from "node:http";
import { WebSocketServer, type WebSocket } from "ws";
import { C2sSession, type StreamTransport } from "./session.js";
import type { C2sContext } from "./context.js";
import { xml } from "../xml/element.js";
import { OutboundGuard } from "../sessions/outbound.js";
import { NS } from "../xml/ns.js";
import { startResumeSweep } from "./sm.js";
import { BoshEndpoint, corsHeaders } from "./bosh.js";

/** Bytes of one tick's output that leave as one write. */
const SLICE = 64 * 1024;
/** A socket's "error" listener (shared: `this` is the socket). */
function destroySocket(this: net.Socket): void {
  this.destroy();
}

const endOfTick = (t: SocketTransport): void => t.endOfTick();

class SocketTransport implements StreamTransport {
  readonly framed = false;
  secure: boolean;
  /** This tick's output, written as one string (one write call, one syscall, one TLS record run) when the tick ends. */
  private pending: string[] = [];
  private pendingBytes = 0;
  private flushedCallbacks: Array<(err?: Error | null) => void> | null = null;
  private scheduled = false;
  session!: C2sSession;
  private readonly guard: OutboundGuard;

  constructor(private socket: net.Socket, readonly kind: "tcp" | "tls", private readonly tlsOptions: tls.TlsOptions | null, maxUnsent: number) {
    this.secure = kind === "tls";
    this.guard = new OutboundGuard(maxUnsent);
  }

  get remoteAddress(): string { return this.socket.remoteAddress ?? "unknown"; }
  get canStartTls(): boolean { return !this.secure && this.tlsOptions !== null; }
  get unsent(): number { return this.socket.writableLength + this.pendingBytes; }
  get tlsSocket(): tls.TLSSocket | null { return this.socket instanceof tls.TLSSocket ? this.socket : null; }

  attach(session: C2sSession): void {
    this.session = session;
    this.socket.on("data", (d: Buffer) => session.onData(d));
  }

  // Writes made in one tick leave as one write (DESIGN "batch socket writes per tick"): the texts are
  // joined, so the socket sees one chunk rather than a corked list of them.
  write(data: string, flushed?: (err?: Error | null) => void): void {
    if (this.socket.destroyed) return;
    this.pending.push(data);
    this.pendingBytes += data.length;
    if (flushed) (this.flushedCallbacks ??= []).push(flushed);
    this.guard.wrote(data.length);
    if (!this.scheduled) {
      this.scheduled = true;
      process.nextTick(endOfTick, this);
    }
    // A large tick (an offline batch, an archive page) leaves in slices, so that the peer's progress
    // through it is seen slice by slice rather than only once all of it is written.
    if (this.pendingBytes > SLICE) this.writePending();
  }

  private writePending(): void {
    const s = this.socket;
    const texts = this.pending, callbacks = this.flushedCallbacks;
    if (texts.length === 0) return;
    this.pending = [];
    this.pendingBytes = 0;
    this.flushedCallbacks = null;
    if (s.destroyed) return;
    const data = texts.length === 1 ? texts[0] : texts.join("");
    if (callbacks === null) s.write(data);
    else if (callbacks.length === 1) s.write(data, callbacks[0]);
    else s.write(data, (err) => { for (const cb of callbacks) cb(err); });
  }

  /** Called once per tick that wrote (a function with an argument, not a closure per connection). */
  endOfTick(): void {
    this.scheduled = false;
    this.writePending();
    const s = this.socket;
    // Measured after the tick's output was offered to the kernel: what is left is what the peer did not take.
    if (this.guard.exceeded(s.writableLength)) this.session.outputOverflow(s.writableLength);
  }

  startTls(): void {
    const raw = this.socket;
    this.writePending();
    raw.removeAllListeners("data");
    const secure = new tls.TLSSocket(raw, { isServer: true, ...this.tlsOptions });
    secure.on("error", () => secure.destroy());
    secure.on("data", (d: Buffer) => this.session.onData(d));
    this.socket = secure;
    this.secure = true;
  }

  end(): void {
    const s = this.socket;
    this.writePending();
    s.end();
    // Don't wait forever for a peer that never closes its side.
    setTimeout(() => s.destroy(), 2000).unref();
  }

  pause(): void { this.socket.pause(); }
  resume(): void { this.socket.resume(); }
}

class WebSocketTransport implements StreamTransport {
  readonly kind = "websocket" as const;
  readonly framed = true;
  readonly canStartTls = false;
  session!: C2sSession;
  private checkScheduled = false;
  private readonly guard: OutboundGuard;
  constructor(private readonly ws: WebSocket, readonly remoteAddress: string, readonly secure: boolean, maxUnsent: number) {
    this.guard = new OutboundGuard(maxUnsent);
  }

  get unsent(): number { return this.ws.bufferedAmount; }

  write(data: string, flushed?: (err?: Error | null) => void): void {
    if (this.ws.readyState !== 1) return;
    this.ws.send(data, flushed);
    this.guard.wrote(data.length);
    if (!this.checkScheduled) {
      this.checkScheduled = true;
      process.nextTick(this.checkOutput);
    }
  }

  private readonly checkOutput = (): void => {
    this.checkScheduled = false;
    const queued = this.ws.bufferedAmount;
    if (this.guard.exceeded(queued)) this.session.outputOverflow(queued);
  };

  end(): void { this.ws.close(1000); setTimeout(() => this.ws.terminate(), 2000).unref(); }
  pause(): void { this.ws.pause(); }
  resume(): void { this.ws.resume(); }
}

export interface ListenerSet {
  c2s: net.Server | null;
  directTls: tls.Server | null;
  http: http.Server | null;
  close(): Promise<void>;
}

function listen(server: net.Server, port: number, host: string): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => { server.off("error", reject); resolve(); });
  });
}

function isLoopback(addr: string | undefined): boolean {
  return !!addr && (addr.startsWith("127.") || addr === "::1" || addr.startsWith("::ffff:127."));
}

export async function startListeners(ctx: C2sContext, tlsOptions: tls.TlsOptions): Promise<ListenerSet> {
  const cfg = ctx.config;
  const perIp = new Map<string, number>();
  let total = 0;

  /**
   * Counts the connection; false (after a policy-violation stream error) when over a limit. Every admitted
   * connection is released once, when its transport closes.
   */
  const admit = (session: C2sSession, addr: string): boolean => {
    const n = (perIp.get(addr) ?? 0) + 1;
    perIp.set(addr, n);
    total++;
    const { maxConnectionsPerIp, maxConnections } = cfg.limits;
    const perIpReached = maxConnectionsPerIp > 0 && n > maxConnectionsPerIp;
    if (perIpReached || (maxConnections > 0 && total > maxConnections)) {
      // Logged once, as the stream error (with the peer and this text).
      session.close("policy-violation", perIpReached ? "too many connections from this address" : "too many connections");
      return false;
    }
    return true;
  };
  const release = (addr: string): void => {
    total--;
    const m = (perIp.get(addr) ?? 1) - 1;
    if (m <= 0) perIp.delete(addr); else perIp.set(addr, m);
  };

  const sockets = new Set<net.Socket>();
  // One "close" listener per connection, and a shared "error" one: listeners, the closures they need and
  // once() wrappers were a few hundred bytes of every idle connection.
  const onSocket = (socket: net.Socket, kind: "tcp" | "tls") => {
    sockets.add(socket);
    socket.setNoDelay(true);
    socket.setKeepAlive(true, 60_000);
    const transport = new SocketTransport(socket, kind, kind === "tcp" ? tlsOptions : null, cfg.c2s.maxOutboundBytes);
    const session = new C2sSession(ctx, transport);
    transport.attach(session);
    socket.on("error", destroySocket);
    const addr = socket.remoteAddress ?? "unknown";
    socket.on("close", () => {
      sockets.delete(socket);
      session.onTransportClose();
      release(addr);
    });
    admit(session, addr);
  };

  const set: ListenerSet = { c2s: null, directTls: null, http: null, close: async () => {} };
  if (cfg.c2s.port !== null) {
    set.c2s = net.createServer((s) => onSocket(s, "tcp"));
    await listen(set.c2s, cfg.c2s.port, cfg.c2s.bind);
  }
  if (cfg.c2s.directTlsPort !== null) {
    set.directTls = tls.createServer({ ...tlsOptions, ALPNProtocols: ["xmpp-client"] }, (s) => onSocket(s, "tls"));
    set.directTls.on("tlsClientError", (_err, s) => s.destroy());
    await listen(set.directTls, cfg.c2s.directTlsPort, cfg.c2s.bind);
  }
  let wss: WebSocketServer | null = null;
  let bosh: BoshEndpoint | null = null;
  if (cfg.http.port !== null) {
    const wsPath = cfg.http.websocketPath;
    const boshCfg = cfg.http.bosh;
    bosh = boshCfg.enabled
      ? new BoshEndpoint(ctx, { ...boshCfg, corsOrigins: cfg.http.corsOrigins }, admit, isLoopback)
      : null;
    set.http = http.createServer((req, res) => {
      const url = (req.url ?? "/").split("?")[0];
      if (bosh && url === bosh.opts.path) return bosh.handle(req, res);
      if (url === "/.well-known/host-meta" || url === "/.well-known/host-meta.json") {
        return hostMeta(req, res, url.endsWith(".json"), { websocket: wsPath, bosh: bosh?.opts.path ?? null, fallbackHost: `${cfg.hosts[0]}:${cfg.http.port}`, corsOrigins: cfg.http.corsOrigins });
      }
      for (const [prefix, handler] of ctx.httpRequests) if (url.startsWith(prefix)) return handler(req, res);
      res.writeHead(url === wsPath ? 426 : 404, { "content-type": "text/plain" });
      res.end(url === wsPath ? "Upgrade to WebSocket with subprotocol 'xmpp'\n" : "Not found\n");
    });
    wss = new WebSocketServer({
      noServer: true,
      maxPayload: cfg.limits.maxStanzaBytes,
      // RFC 7395 §3.1: the subprotocol is "xmpp".
      handleProtocols: (protocols) => (protocols.has("xmpp") ? "xmpp" : false),
    });
    set.http.on("upgrade", (req, socket, head) => {
      const url = (req.url ?? "").split("?")[0];
      const other = ctx.httpUpgrades.get(url);
      if (other) return other(req, socket, head);
      if (url !== wsPath) { socket.destroy(); return; }
      wss!.handleUpgrade(req, socket, head, (ws) => {
        if (ws.protocol !== "xmpp") { ws.close(1002, "subprotocol xmpp required"); return; }
        const addr = req.socket.remoteAddress ?? "unknown";
        // A WebSocket is as secure as the hop to a TLS-terminating proxy: only loopback counts as secure.
        const transport = new WebSocketTransport(ws, addr, isLoopback(addr), cfg.c2s.maxOutboundBytes);
        const session = new C2sSession(ctx, transport);
        transport.session = session;
        ws.on("message", (data, isBinary) => {
          if (isBinary) return session.close("unsupported-encoding", "RFC 7395 uses text frames");
          session.onData(Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data as ArrayBuffer));
        });
        ws.on("error", () => ws.terminate());
        ws.on("close", () => { session.onTransportClose(); release(addr); });
        admit(session, addr);
      });
    });
    await listen(set.http, cfg.http.port, cfg.http.bind);
  }

  const sweep = startSweep(ctx);
  const resumeSweep = startResumeSweep(ctx);
  set.close = async () => {
    clearInterval(sweep);
    clearInterval(resumeSweep);
    const closing: Promise<void>[] = [];
    for (const s of [set.c2s, set.directTls, set.http]) if (s) closing.push(new Promise((r) => s.close(() => r())));
    for (const session of [...ctx.tracker]) session.close("system-shutdown");
    bosh?.close();
    wss?.close();
    // Give the stream errors a moment to leave, then drop whatever is still open.
    await new Promise((r) => setTimeout(r, 50));
    for (const s of sockets) s.destroy();
    for (const c of wss?.clients ?? []) c.terminate();
    set.http?.closeAllConnections();
    await Promise.race([Promise.all(closing), new Promise((r) => setTimeout(r, 3000))]);
  };
  return set;
}

/**
 * XEP-0156 §3: host-meta (XRD) and host-meta.json (JRD) list the WebSocket and BOSH endpoints, readable
 * from browsers (CORS). The scheme follows a TLS-terminating proxy's X-Forwarded-Proto.
 */
function hostMeta(req: http.IncomingMessage, res: http.ServerResponse, json: boolean, o: { websocket: string; bosh: string | null; fallbackHost: string; corsOrigins: readonly string[] }): void {
  const host = req.headers.host ?? o.fallbackHost;
  const https = req.headers["x-forwarded-proto"] === "https";
  const links = [{ rel: "urn:xmpp:alt-connections:websocket", href: `${https ? "wss" : "ws"}://${host}${o.websocket}` }];
  if (o.bosh) links.push({ rel: "urn:xmpp:alt-connections:xbosh", href: `${https ? "https" : "http"}://${host}${o.bosh}` });
  const cors = corsHeaders(o.corsOrigins, req.headers.origin);
  if (json) {
    res.writeHead(200, { "content-type": "application/json", ...cors });
    res.end(JSON.stringify({ links }));
    return;
  }
  const xrd = xml("XRD", { xmlns: "http://docs.oasis-open.org/ns/xri/xrd-1.0" }, ...links.map((l) => xml("Link", l)));
  res.writeHead(200, { "content-type": "application/xrd+xml", ...cors });
  res.end(`<?xml version='1.0' encoding='utf-8'?>${xrd.toString()}`);
}

/**
 * One timer for all streams instead of one per connection: unauthenticated streams past the deadline
 * and silent ones that did not answer a server ping (XEP-0199) get `connection-timeout`.
 */
function startSweep(ctx: C2sContext): NodeJS.Timeout {
  const { authTimeoutSeconds, idleTimeoutSeconds } = ctx.config.limits;
  const authMs = authTimeoutSeconds * 1000;
  const idleMs = idleTimeoutSeconds * 1000;
  const every = Math.max(100, Math.min(5000, Math.min(authMs, idleMs) / 4));
  let pingId = 0;
  const t = setInterval(() => {
    const now = Date.now();
    for (const s of ctx.tracker) {
      if (s.hibernating) continue;
      if (!s.isAuthenticated || !s.jid) {
        if (now - s.openedAt > authMs) s.close("connection-timeout", "authentication took too long");
        continue;
      }
      if (s.pingSentAt) {
        if (now - s.pingSentAt > Math.min(idleMs, 60_000)) s.connectionLost("no answer to a ping");
      } else if (now - s.lastActivity > idleMs) {
        s.pingSentAt = now;
        s.send(xml("iq", { type: "get", id: `sweep-${(pingId++).toString(36)}`, from: s.host, to: s.jid.toString() }, xml("ping", { xmlns: NS.ping })));
      }
    }
  }, every);
  t.unref();
  return t;
}
