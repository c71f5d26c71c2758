// The mobile WebSocket endpoint: its own HTTP listener (modules.mobile.port, path /mobile), or mounted
// on another HTTP server through handleUpgrade(). One shared sweep (not a timer per connection) closes
// connections that never log in and ones that stay silent past the heartbeat timeout.
import http from "node:http";
import type { Duplex } from "node:stream";
import type { AddressInfo } from "node:net";
import { WebSocketServer, type WebSocket, type RawData } from "ws";
import { KickReason } from "./schema.js";
import { CLOSE, MobileSession, type MobileTransport } from "./session.js";
import type { MobileContext } from "./context.js";

/** The WebSocket subprotocol a client may ask for; a client that asks for none is served too. */
export const SUBPROTOCOL = "hearth.mobile.v1";

function isLoopback(addr: string | undefined): boolean {
  return !!addr && (addr.startsWith("127.") || addr === "::1" || addr.startsWith("::ffff:127."));
}

function toBuffer(data: RawData): Buffer {
  if (Buffer.isBuffer(data)) return data;
  if (Array.isArray(data)) return Buffer.concat(data);
  return Buffer.from(data);
}

export class MobileGateway {
  private readonly wss: WebSocketServer;
  private server: http.Server | null = null;
  private sweepTimer: NodeJS.Timeout | null = null;
  private readonly perIp = new Map<string, number>();
  private total = 0;

  constructor(private readonly ctx: MobileContext) {
    const { opts } = ctx;
    this.wss = new WebSocketServer({
      noServer: true,
      // Frames up to 4× the limit are read and answered FRAME_TOO_LARGE; beyond that the WebSocket
      // layer closes with 1009 (RFC 6455 §7.4.1) without buffering them.
      maxPayload: opts.maxFrameBytes * 4,
      perMessageDeflate: false,
      handleProtocols: (protocols) => (protocols.has(SUBPROTOCOL) ? SUBPROTOCOL : false),
    });
  }

  get path(): string { return this.ctx.opts.path; }

  /** The port of the own listener (0 when there is none). */
  get port(): number {
    const a = this.server?.address() as AddressInfo | null | undefined;
    return a && typeof a === "object" ? a.port : 0;
  }

  async listen(): Promise<void> {
    const { port, bind, path } = this.ctx.opts;
    if (port !== null) {
      const server = http.createServer((req, res) => {
        const url = (req.url ?? "/").split("?")[0];
        res.writeHead(url === path ? 426 : 404, { "content-type": "text/plain" });
        res.end(url === path ? `Upgrade to WebSocket (subprotocol ${SUBPROTOCOL}) and send hearth.mobile.v1.Envelope frames\n` : "Not found\n");
      });
      server.on("upgrade", (req, socket, head) => { if (!this.handleUpgrade(req, socket, head)) socket.destroy(); });
      await new Promise<void>((resolve, reject) => {
        server.once("error", reject);
        server.listen(port, bind, () => { server.off("error", reject); resolve(); });
      });
      this.server = server;
    }
    this.startSweep();
  }

  /** Serves an HTTP upgrade for the mobile path; false when the path is not ours. */
  handleUpgrade(req: http.IncomingMessage, socket: Duplex, head: Buffer): boolean {
    if ((req.url ?? "").split("?")[0] !== this.ctx.opts.path) return false;
    this.wss.handleUpgrade(req, socket, head, (ws) => this.onConnection(ws, req));
    return true;
  }

  private onConnection(ws: WebSocket, req: http.IncomingMessage): void {
    const addr = req.socket.remoteAddress ?? "unknown";
    const secure = isLoopback(addr) || (req.socket as { encrypted?: boolean }).encrypted === true;
    const transport: MobileTransport = {
      remoteAddress: addr,
      secure,
      get bufferedAmount() { return ws.bufferedAmount; },
      send(frame) { if (ws.readyState === ws.OPEN) ws.send(frame, { binary: true }); },
      close(code, reason) {
        if (ws.readyState === ws.OPEN) ws.close(code, reason);
        // Don't wait forever for a peer that never answers the close.
        setTimeout(() => ws.terminate(), 2000).unref();
      },
      pause() { ws.pause(); },
      resume() { ws.resume(); },
    };
    const session = new MobileSession(this.ctx, transport);
    const n = (this.perIp.get(addr) ?? 0) + 1;
    this.perIp.set(addr, n);
    this.total++;
    let counted = true;
    const uncount = () => {
      if (!counted) return;
      counted = false;
      this.total--;
      const m = (this.perIp.get(addr) ?? 1) - 1;
      if (m <= 0) this.perIp.delete(addr); else this.perIp.set(addr, m);
    };
    ws.on("message", (data, isBinary) => session.onFrame(toBuffer(data), isBinary));
    ws.on("error", () => ws.terminate());
    ws.on("close", () => { uncount(); session.onTransportClose(); });
    const { maxConnectionsPerIp, maxConnections } = this.ctx.api.config.limits;
    if ((maxConnectionsPerIp > 0 && n > maxConnectionsPerIp) || (maxConnections > 0 && this.total > maxConnections)) {
      session.end(CLOSE.policy, "too many connections", "connection limit");
    }
  }

  private startSweep(): void {
    const { opts } = this.ctx;
    const shortest = Math.min(opts.heartbeatSeconds * opts.heartbeatTimeoutMultiplier, opts.loginTimeoutSeconds) * 1000;
    const every = Math.max(20, Math.min(5000, shortest / 4));
    this.sweepTimer = setInterval(() => this.sweep(), every);
    this.sweepTimer.unref();
  }

  private sweep(): void {
    const { opts } = this.ctx;
    const now = Date.now();
    const loginMs = opts.loginTimeoutSeconds * 1000;
    const fg = opts.heartbeatSeconds * opts.heartbeatTimeoutMultiplier * 1000;
    const bg = opts.backgroundHeartbeatSeconds * opts.heartbeatTimeoutMultiplier * 1000;
    for (const s of this.ctx.connections) {
      if (!s.authenticated) {
        if (now - s.openedAt > loginMs) s.end(CLOSE.policy, "log in first", "login timeout");
      } else if (now - s.lastActivity > (s.background ? bg : fg)) {
        s.kick(KickReason.HEARTBEAT_TIMEOUT, "no heartbeat");
      }
    }
  }

  /** Ends every session (Kicked SERVER_SHUTDOWN) and stops listening. */
  async close(): Promise<void> {
    if (this.sweepTimer) clearInterval(this.sweepTimer);
    this.sweepTimer = null;
    for (const s of [...this.ctx.connections]) s.kick(KickReason.SERVER_SHUTDOWN, "the server is shutting down");
    const server = this.server;
    this.server = null;
    if (server) {
      await new Promise((r) => setTimeout(r, 20));
      for (const c of this.wss.clients) c.terminate();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
    this.wss.close();
  }
}
