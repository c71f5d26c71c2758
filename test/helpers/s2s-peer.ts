// Federation test helpers: free ports on chosen loopback addresses, pairs of federating test servers, and
// a scripted initiating server whose every byte is under the test's control (for hostile-peer tests).
import net from "node:net";
import tls from "node:tls";
import { StreamParser } from "../../src/xml/parser.js";
import { xml, type Element } from "../../src/xml/element.js";
import { startTestServer, type TestServer } from "./server.js";

export function freePort(host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once("error", reject);
    srv.listen(0, host, () => {
      const port = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(port));
    });
  });
}

export const A_ADDR = "127.0.0.2";
export const B_ADDR = "127.0.0.3";

/**
 * a.test on 127.0.0.2 and b.test on 127.0.0.3, routed to each other through s2s.routes; `extra` adds config
 * per domain. With `directTls` each listens on s2s.directTlsPort only and the routes are tls:// (XEP-0368).
 */
export async function federatedPair(extra: (domain: string) => Record<string, unknown> = () => ({}), opts: { directTls?: boolean } = {}): Promise<[TestServer, TestServer]> {
  const [aPort, bPort] = [await freePort(A_ADDR), await freePort(B_ADDR)];
  const scheme = opts.directTls ? "tls://" : "";
  const routes: Record<string, string> = { "a.test": `${scheme}${A_ADDR}:${aPort}`, "b.test": `${scheme}${B_ADDR}:${bPort}` };
  // The MUC services (conference.<host>) are reached at the same listeners, as their SRV records would say.
  routes["conference.a.test"] = routes["a.test"]!;
  routes["conference.b.test"] = routes["b.test"]!;
  const config = (domain: string, addr: string, port: number) => {
    const { s2s, ...rest } = extra(domain) as { s2s?: object };
    const listener = opts.directTls ? { port: null, directTlsPort: port } : { port };
    return { hosts: [domain], ...rest, s2s: { bind: addr, ...listener, routes, connectTimeoutSeconds: 5, ...s2s } };
  };
  return Promise.all([startTestServer(config("a.test", A_ADDR, aPort)), startTestServer(config("b.test", B_ADDR, bPort))]);
}

/** A TCP relay to `target` that a test can cut (both sides destroyed at once, no stream end): a dropped link. */
export async function cuttableLink(host: string, target: { host: string; port: number }): Promise<{ port: number; cut(): void; stop(): Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const srv = net.createServer((inbound) => {
    const outbound = net.connect(target.port, target.host);
    for (const s of [inbound, outbound]) {
      sockets.add(s);
      s.on("error", () => { inbound.destroy(); outbound.destroy(); });
      s.on("close", () => { sockets.delete(s); inbound.destroy(); outbound.destroy(); });
    }
    inbound.pipe(outbound);
    outbound.pipe(inbound);
  });
  await new Promise<void>((r) => srv.listen(0, host, () => r()));
  const cut = () => { for (const s of sockets) s.destroy(); };
  return {
    port: (srv.address() as net.AddressInfo).port,
    cut,
    stop: () => { cut(); return new Promise<void>((r) => srv.close(() => r())); },
  };
}

/** A server stream we drive by hand, as an initiating server would. */
export class ScriptedPeer {
  header: Record<string, string> | null = null;
  private parser!: StreamParser;
  private inbox: Element[] = [];
  private waiters: Array<{ match: (el: Element) => boolean; resolve: (el: Element) => void }> = [];
  private ended = false;
  /** Everything received since the last TLS switch, decoded, for byte-level assertions. */
  private raw = "";
  private endWaiters: Array<() => void> = [];

  private constructor(private socket: net.Socket) {
    this.reset();
    socket.on("data", (d: Buffer) => this.onData(d));
    socket.on("close", () => this.finish());
    socket.on("error", () => this.finish());
  }

  static connect(host: string, port: number): Promise<ScriptedPeer> {
    return new Promise((resolve, reject) => {
      const s = net.connect(port, host, () => resolve(peer));
      s.once("error", reject);
      const peer = new ScriptedPeer(s);
    });
  }

  /** A direct TLS connection (XEP-0368) offering ALPN `alpn`; the negotiated protocol is in `alpnProtocol`. */
  static connectTls(host: string, port: number, servername: string, alpn: string[] = ["xmpp-server"]): Promise<ScriptedPeer> {
    return new Promise((resolve, reject) => {
      const s = tls.connect({ host, port, servername, ALPNProtocols: alpn, rejectUnauthorized: false }, () => resolve(peer));
      s.once("error", reject);
      const peer = new ScriptedPeer(s);
    });
  }

  get alpnProtocol(): string | false | null { return this.socket instanceof tls.TLSSocket ? this.socket.alpnProtocol : null; }

  private onData(d: Buffer): void {
    this.raw += d.toString("utf8");
    this.parser.write(d);
  }

  get charsReceived(): number { return this.raw.length; }
  /** What arrived after `offset` (a value of charsReceived). */
  rawSince(offset: number): string { return this.raw.slice(offset); }

  private reset(): void {
    this.parser = new StreamParser({
      onStreamStart: (_n, attrs) => { this.header = attrs; },
      onStanza: (el) => {
        const i = this.waiters.findIndex((w) => w.match(el));
        if (i >= 0) this.waiters.splice(i, 1)[0]!.resolve(el);
        else this.inbox.push(el);
      },
      onStreamEnd: () => this.finish(),
      onError: () => this.finish(),
    });
  }

  private finish(): void {
    if (this.ended) return;
    this.ended = true;
    for (const w of this.endWaiters.splice(0)) w();
  }

  send(x: Element | string): void { this.socket.write(typeof x === "string" ? x : x.toString()); }

  receive(match: (el: Element) => boolean = () => true, ms = 3000): Promise<Element> {
    const i = this.inbox.findIndex(match);
    if (i >= 0) return Promise.resolve(this.inbox.splice(i, 1)[0]!);
    return new Promise((resolve, reject) => {
      const w = { match, resolve: (el: Element) => { clearTimeout(t); resolve(el); } };
      const t = setTimeout(() => {
        this.waiters.splice(this.waiters.indexOf(w), 1);
        reject(new Error(`nothing matching arrived within ${ms} ms; inbox: ${this.inbox.map(String).join(" ")}`));
      }, ms);
      this.waiters.push(w);
    });
  }

  /** Opens a jabber:server stream and returns the features. */
  open(from: string | undefined, to: string): Promise<Element> {
    this.header = null;
    this.send(`<?xml version='1.0'?><stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback'${from ? ` from='${from}'` : ""} to='${to}' version='1.0'>`);
    return this.receive((el) => el.name === "stream:features");
  }

  async startTls(servername: string): Promise<void> {
    this.send(xml("starttls", { xmlns: "urn:ietf:params:xml:ns:xmpp-tls" }));
    await this.receive((el) => el.name === "proceed");
    this.socket.removeAllListeners("data");
    const secure = tls.connect({ socket: this.socket, servername, rejectUnauthorized: false });
    await new Promise<void>((resolve, reject) => { secure.once("secureConnect", resolve); secure.once("error", reject); });
    this.socket = secure;
    this.reset();
    this.raw = "";
    secure.on("data", (d: Buffer) => this.onData(d));
  }

  get streamId(): string { return this.header?.id ?? ""; }

  /** Resolves with the stream error element (or null) when the server ends the stream. */
  closed(ms = 3000): Promise<Element | null> {
    const error = () => this.inbox.find((el) => el.name === "stream:error") ?? null;
    if (this.ended) return Promise.resolve(error());
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error("the server did not close the stream")), ms);
      this.endWaiters.push(() => { clearTimeout(t); resolve(error()); });
    });
  }

  destroy(): void { this.socket.destroy(); }
}
