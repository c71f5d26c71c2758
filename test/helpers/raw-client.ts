// A raw XML client for dialogue-style tests and malformed input: every byte it sends is under the test's control.
import net from "node:net";
import tls from "node:tls";
import { StreamParser } from "../../src/xml/parser.js";
import { xml, type Element } from "../../src/xml/element.js";
import { ScramClient, type Hash } from "./scram-client.js";
import type { TestServer } from "./server.js";

const NS_SASL = "urn:ietf:params:xml:ns:xmpp-sasl";
let nextId = 1;

interface Waiter { match: (el: Element) => boolean; resolve: (el: Element) => void; reject: (e: Error) => void; timer: NodeJS.Timeout }

export class RawClient {
  jid = "";
  header: Record<string, string> | null = null;
  private socket: net.Socket;
  private parser!: StreamParser;
  private inbox: Element[] = [];
  private waiters: Waiter[] = [];
  private endedWith: Element | null = null;
  private ended = false;
  private endWaiters: Array<() => void> = [];
  private headerWaiters: Array<() => void> = [];

  private constructor(socket: net.Socket, readonly ts: TestServer) {
    this.socket = socket;
    this.resetParser();
    this.listen(socket);
  }

  /** `localAddress` (TCP): the loopback address to connect from (127.0.0.2…), standing for another client host. */
  static connect(ts: TestServer, opts: { tls?: boolean; localAddress?: string } = {}): Promise<RawClient> {
    return new Promise((resolve, reject) => {
      const { localAddress } = opts;
      const socket = opts.tls
        ? tls.connect({ host: "127.0.0.1", port: ts.tlsPort, servername: ts.host, rejectUnauthorized: false }, () => resolve(client))
        : net.connect({ port: ts.c2sPort, host: "127.0.0.1", localAddress }, () => resolve(client));
      socket.once("error", reject);
      const client = new RawClient(socket, ts);
    });
  }

  private listen(socket: net.Socket): void {
    socket.on("data", (d: Buffer) => this.parser.write(d));
    socket.on("close", () => this.finish());
    socket.on("error", () => this.finish());
  }

  private resetParser(): void {
    this.parser = new StreamParser({
      onStreamStart: (_name, attrs) => { this.header = attrs; for (const w of this.headerWaiters.splice(0)) w(); },
      onStanza: (el) => {
        if (el.name === "stream:error") this.endedWith = el;
        const i = this.waiters.findIndex((w) => w.match(el));
        if (i >= 0) {
          const [w] = this.waiters.splice(i, 1);
          clearTimeout(w.timer);
          w.resolve(el);
        } else this.inbox.push(el);
      },
      onStreamEnd: () => this.finish(),
      onError: () => this.finish(),
    }, { limits: { maxStanzaBytes: 10 * 1024 * 1024 } });
  }

  private finish(): void {
    if (this.ended) return;
    this.ended = true;
    for (const w of this.endWaiters.splice(0)) w();
    for (const w of this.waiters.splice(0)) { clearTimeout(w.timer); w.reject(new Error(`stream ended${this.endedWith ? ": " + this.endedWith.toString() : ""}`)); }
  }

  get isClosed(): boolean { return this.ended; }

  send(x: Element | string): void {
    this.socket.write(typeof x === "string" ? x : x.toString());
  }

  receive(match: (el: Element) => boolean = () => true, timeoutMs = 3000): Promise<Element> {
    const i = this.inbox.findIndex(match);
    if (i >= 0) return Promise.resolve(this.inbox.splice(i, 1)[0]);
    if (this.ended) return Promise.reject(new Error("stream ended"));
    return new Promise((resolve, reject) => {
      const w: Waiter = { match, resolve, reject, timer: setTimeout(() => {
        this.waiters.splice(this.waiters.indexOf(w), 1);
        reject(new Error(`nothing matching arrived within ${timeoutMs} ms; inbox: ${this.inbox.map(String).join(" ")}`));
      }, timeoutMs) };
      this.waiters.push(w);
    });
  }

  /** Asserts that nothing matching arrives within `ms`. */
  async nothing(match: (el: Element) => boolean = () => true, ms = 300): Promise<void> {
    try {
      const el = await this.receive(match, ms);
      throw new Error(`unexpected: ${el.toString()}`);
    } catch (e) {
      if ((e as Error).message.startsWith("unexpected")) throw e;
    }
  }

  async iq(req: Element, timeoutMs = 3000): Promise<Element> {
    if (!req.attrs.id) req.attrs.id = `q${nextId++}`;
    const id = req.attrs.id;
    this.send(req);
    return this.receive((el) => el.name === "iq" && el.attrs.id === id && (el.attrs.type === "result" || el.attrs.type === "error"), timeoutMs);
  }

  /** Sends the stream header and returns the features. */
  async open(to = this.ts.host): Promise<Element> {
    this.header = null;
    this.send(`<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='${to}' version='1.0'>`);
    return this.receive((el) => el.name === "stream:features");
  }

  async startTls(): Promise<void> {
    this.send(xml("starttls", { xmlns: "urn:ietf:params:xml:ns:xmpp-tls" }));
    await this.receive((el) => el.name === "proceed");
    this.socket.removeAllListeners("data");
    const secure = tls.connect({ socket: this.socket, servername: this.ts.host, rejectUnauthorized: false });
    await new Promise<void>((resolve, reject) => { secure.once("secureConnect", resolve); secure.once("error", reject); });
    this.socket = secure;
    this.resetParser();
    secure.on("data", (d: Buffer) => this.parser.write(d));
  }

  get tlsSocket(): tls.TLSSocket | null { return this.socket instanceof tls.TLSSocket ? this.socket : null; }

  /** SCRAM authentication; resolves with the <success/> or rejects with the <failure/>. */
  async authenticate(username: string, password: string, hash: Hash = "SHA-256"): Promise<Element> {
    const scram = new ScramClient(hash, username, password);
    this.send(xml("auth", { xmlns: NS_SASL, mechanism: `SCRAM-${hash}` }, Buffer.from(scram.first()).toString("base64")));
    const isSasl = (el: Element) => el.attrs.xmlns === NS_SASL;
    const challenge = await this.receive(isSasl);
    if (challenge.name !== "challenge") throw Object.assign(new Error(`SASL failed: ${challenge.toString()}`), { element: challenge });
    this.send(xml("response", { xmlns: NS_SASL }, Buffer.from(scram.final(Buffer.from(challenge.getText(), "base64").toString())).toString("base64")));
    const outcome = await this.receive(isSasl);
    if (outcome.name !== "success") throw Object.assign(new Error(`SASL failed: ${outcome.toString()}`), { element: outcome });
    if (!scram.verify(Buffer.from(outcome.getText(), "base64").toString())) throw new Error("server signature mismatch");
    this.resetParser();
    return outcome;
  }

  async bind(resource?: string): Promise<string> {
    const res = await this.iq(xml("iq", { type: "set" }, xml("bind", { xmlns: "urn:ietf:params:xml:ns:xmpp-bind" }, resource ? xml("resource", null, resource) : null)));
    if (res.attrs.type !== "result") throw new Error(`bind failed: ${res.toString()}`);
    this.jid = res.getChild("bind")!.getChildText("jid")!;
    return this.jid;
  }

  /** Stream, SCRAM-SHA-256, restart, bind. No initial presence. */
  async login(username: string, password: string, resource?: string): Promise<void> {
    await this.open();
    await this.authenticate(username, password);
    await this.open();
    await this.bind(resource);
  }

  /** Resolves when the server ends the stream, with the stream error if there was one. */
  closed(timeoutMs = 3000): Promise<Element | null> {
    if (this.ended) return Promise.resolve(this.endedWith);
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error("the server did not close the stream")), timeoutMs);
      this.endWaiters.push(() => { clearTimeout(t); resolve(this.endedWith); });
    });
  }

  close(): void {
    if (!this.ended) this.socket.end("</stream:stream>");
    this.socket.destroy();
  }

  destroy(): void {
    this.socket.destroy();
  }

  /** Stops reading from the socket (a slow reader): the server's output backs up behind it. */
  pauseReading(): void {
    this.socket.pause();
  }

  resumeReading(): void {
    this.socket.resume();
  }
}

/** The condition name of a stream error or stanza error element. */
export function errorCondition(el: Element | null): string | undefined {
  if (!el) return undefined;
  const err = el.name === "stream:error" || el.name === "error" ? el : el.getChild("error");
  return err?.children.find((c): c is Element => typeof c !== "string" && c.name !== "text")?.name;
}

/** Logs in a fresh account with initial presence. */
export async function onlineUser(ts: TestServer, username: string, opts: { resource?: string; password?: string; priority?: number } = {}): Promise<RawClient> {
  const password = opts.password ?? "password";
  if (!(await ts.accounts.exists(ts.host, username))) await ts.accounts.create(ts.host, username, password);
  const c = await RawClient.connect(ts);
  await c.login(username, password, opts.resource);
  c.send(xml("presence", null, opts.priority !== undefined ? xml("priority", null, String(opts.priority)) : null));
  await c.receive((el) => el.name === "presence" && el.attrs.from === c.jid);
  return c;
}
