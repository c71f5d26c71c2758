// A XEP-0114 component over a raw socket, for the component tests: every byte it sends is under the test's control.
import assert from "node:assert/strict";
import net from "node:net";
import { StreamParser } from "../../src/xml/parser.js";
import { xml, type Element } from "../../src/xml/element.js";
import { handshakeDigest } from "../../src/component/stream.js";

export const GATEWAY = "gateway.localhost";
export const SECRET = "the gateway's shared secret";
const STREAMS = "urn:ietf:params:xml:ns:xmpp-streams";

export /** A component over a raw socket: every byte it sends is under the test's control. */
class RawComponent {
  header: Record<string, string> | null = null;
  private readonly inbox: Element[] = [];
  private waiters: Array<{ match: (el: Element) => boolean; resolve: (el: Element) => void }> = [];
  private headerWaiter: (() => void) | null = null;
  readonly closed: Promise<void>;
  private readonly parser = new StreamParser({
    onStreamStart: (_name, attrs) => { this.header = attrs; this.headerWaiter?.(); },
    onStanza: (el) => {
      const i = this.waiters.findIndex((w) => w.match(el));
      if (i >= 0) this.waiters.splice(i, 1)[0].resolve(el);
      else this.inbox.push(el);
    },
    onStreamEnd: () => {},
    onError: () => {},
  }, { limits: { maxStanzaBytes: 1 << 20 } });

  private constructor(private readonly socket: net.Socket) {
    socket.on("data", (d: Buffer) => this.parser.write(d));
    this.closed = new Promise((resolve) => socket.on("close", () => resolve()));
    socket.on("error", () => {});
  }

  static connect(port: number): Promise<RawComponent> {
    return new Promise((resolve, reject) => {
      const socket = net.connect({ port, host: "127.0.0.1" }, () => resolve(c));
      socket.once("error", reject);
      const c = new RawComponent(socket);
    });
  }

  /** Opens the stream for `domain` and sends the handshake for `secret`; resolves to what the server answered. */
  static async login(port: number, domain = GATEWAY, secret = SECRET): Promise<{ c: RawComponent; answer: Element }> {
    const c = await RawComponent.connect(port);
    await c.open(domain);
    if (!c.header?.id) return { c, answer: await c.receive() };
    c.send(xml("handshake", null, handshakeDigest(c.header.id, secret)));
    return { c, answer: await c.receive((el) => el.name === "handshake" || el.name === "stream:error") };
  }

  async open(domain: string): Promise<void> {
    const got = new Promise<void>((resolve) => { this.headerWaiter = resolve; });
    this.send(`<?xml version='1.0'?><stream:stream xmlns='jabber:component:accept' xmlns:stream='http://etherx.jabber.org/streams' to='${domain}'>`);
    await Promise.race([got, this.closed]);
  }

  send(x: Element | string): void { this.socket.write(typeof x === "string" ? x : x.toString()); }

  receive(match: (el: Element) => boolean = () => true, timeoutMs = 3000): Promise<Element> {
    const i = this.inbox.findIndex(match);
    if (i >= 0) return Promise.resolve(this.inbox.splice(i, 1)[0]);
    return new Promise((resolve, reject) => {
      const w = { match, resolve: (el: Element) => { clearTimeout(t); resolve(el); } };
      const t = setTimeout(() => {
        this.waiters = this.waiters.filter((x) => x !== w);
        reject(new Error(`nothing matching arrived within ${timeoutMs} ms; inbox: ${this.inbox.map(String).join(" ")}`));
      }, timeoutMs);
      this.waiters.push(w);
    });
  }

  /** Asserts that nothing matching arrives within `ms`. */
  async nothing(match: (el: Element) => boolean, ms = 300): Promise<void> {
    const el = await this.receive(match, ms).catch(() => null);
    assert.equal(el, null, `unexpected ${el?.toString()}`);
  }

  close(): void { this.socket.end("</stream:stream>"); }
}

export const streamErrorOf = (el: Element) => {
  assert.equal(el.name, "stream:error", el.toString());
  return el.children.find((c): c is Element => typeof c !== "string" && c.attrs.xmlns === STREAMS)?.name;
};

