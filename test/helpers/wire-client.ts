// A client that writes raw bytes to the c2s TCP port or the RFC 7395 WebSocket endpoint, and checks
// everything it receives with an independent strict parser (saxes: XML 1.0 + Namespaces in XML), so
// hostile-input and fuzz tests can see both what the server accepts and whether its output is sound.
import net from "node:net";
import WebSocket from "ws";
import { SaxesParser } from "saxes";
import { StreamParser, parseFramedElement } from "../../src/xml/parser.js";
import { xml, type Element } from "../../src/xml/element.js";
import { errorCondition } from "./raw-client.js";
import type { TestServer } from "./server.js";

export type Endpoint = "tcp" | "ws";

const STREAM_OPEN = "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>";
const NS_SASL = "urn:ietf:params:xml:ns:xmpp-sasl";

/** The first strict-parser error in a stream of text, or in one standalone document. */
export class StrictCheck {
  readonly errors: string[] = [];
  private sax: SaxesParser | null = null;
  private decoder = new TextDecoder("utf-8", { fatal: true });

  private parser(): SaxesParser {
    const sax = new SaxesParser({ xmlns: true });
    sax.on("error", (e) => { if (this.errors.length < 10) this.errors.push(e.message); });
    return sax;
  }

  /** Checks the stanzas of an open stream from here on, as children of a stream header. */
  beginStream(): void {
    this.sax = this.parser();
    this.sax.write(STREAM_OPEN);
  }

  streamBytes(data: Buffer): void {
    if (this.sax === null) return;
    let text: string;
    try { text = this.decoder.decode(data, { stream: true }); } catch { this.errors.push("invalid UTF-8 in output"); this.sax = null; return; }
    try { this.sax.write(text); } catch (e) { this.errors.push((e as Error).message); }
  }

  /** RFC 7395 §3.3.3: every WebSocket message is a document of its own. */
  document(text: string): void {
    try { this.parser().write(text).close(); } catch (e) { this.errors.push((e as Error).message); }
  }
}

interface Waiter { match: (el: Element) => boolean; resolve: (el: Element) => void; timer: NodeJS.Timeout }

export class WireClient {
  readonly check = new StrictCheck();
  /** Every element received, in order. */
  readonly received: Element[] = [];
  streamError: string | null = null;
  jid = "";
  private socket: net.Socket | null = null;
  private ws: WebSocket | null = null;
  private parser: StreamParser | null = null;
  private waiters: Waiter[] = [];
  private closedPromise: Promise<void>;
  private markClosed!: () => void;
  private isClosed = false;

  private constructor(readonly endpoint: Endpoint, readonly ts: TestServer) {
    this.closedPromise = new Promise((resolve) => { this.markClosed = resolve; });
  }

  static async connect(ts: TestServer, endpoint: Endpoint): Promise<WireClient> {
    const c = new WireClient(endpoint, ts);
    if (endpoint === "tcp") {
      const socket = net.connect(ts.c2sPort, "127.0.0.1");
      await new Promise<void>((resolve, reject) => { socket.once("connect", resolve); socket.once("error", reject); });
      c.socket = socket;
      c.resetParser();
      socket.on("data", (d: Buffer) => { c.check.streamBytes(d); c.parser!.write(d); });
      socket.on("error", () => {});
      socket.on("close", () => c.finish());
    } else {
      const ws = new WebSocket(`ws://127.0.0.1:${ts.httpPort}${ts.config.http.websocketPath}`, "xmpp");
      await new Promise<void>((resolve, reject) => { ws.once("open", resolve); ws.once("error", reject); });
      c.ws = ws;
      ws.on("message", (data: Buffer) => {
        const text = data.toString("utf8");
        c.check.document(text);
        let el: Element;
        try { el = parseFramedElement(text, { maxStanzaBytes: 16 * 1024 * 1024 }); } catch { return; }
        c.onElement(el);
      });
      ws.on("error", () => {});
      ws.on("close", () => c.finish());
    }
    return c;
  }

  private resetParser(): void {
    this.parser = new StreamParser({
      onStreamStart: () => {},
      onStanza: (el) => this.onElement(el),
      onStreamEnd: () => {},
      onError: (err) => { this.check.errors.push(`hearth parser: ${err.message}`); },
    }, { limits: { maxStanzaBytes: 16 * 1024 * 1024 } });
  }

  private onElement(el: Element): void {
    if (el.name === "stream:error") this.streamError = errorCondition(el) ?? "";
    this.received.push(el);
    const i = this.waiters.findIndex((w) => w.match(el));
    if (i >= 0) {
      const [w] = this.waiters.splice(i, 1);
      clearTimeout(w.timer);
      w.resolve(el);
    }
  }

  private finish(): void {
    this.isClosed = true;
    this.markClosed();
  }

  get closedNow(): boolean { return this.isClosed; }

  send(data: string | Buffer): void {
    if (this.isClosed) return;
    if (this.socket) this.socket.write(data);
    // A Buffer goes out as a text frame byte for byte, valid UTF-8 or not.
    else this.ws!.send(data, { binary: false });
  }

  receive(match: (el: Element) => boolean, timeoutMs = 5000): Promise<Element> {
    const found = this.received.find(match);
    if (found) {
      this.received.splice(this.received.indexOf(found), 1);
      return Promise.resolve(found);
    }
    return new Promise((resolve, reject) => {
      const w: Waiter = {
        match,
        resolve: (el) => { this.received.splice(this.received.indexOf(el), 1); resolve(el); },
        timer: setTimeout(() => { this.waiters.splice(this.waiters.indexOf(w), 1); reject(new Error(`${this.endpoint}: nothing matching within ${timeoutMs} ms`)); }, timeoutMs),
      };
      this.waiters.push(w);
    });
  }

  /** Opens the stream; `extra` (TCP only) adds attributes to the header, e.g. namespace declarations. */
  async open(extra = ""): Promise<void> {
    if (this.endpoint === "tcp") {
      this.send(`<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='${this.ts.host}' version='1.0'${extra}>`);
    } else {
      this.send(`<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='${this.ts.host}' version='1.0'/>`);
    }
    await this.receive((el) => el.name === "stream:features");
  }

  /** Stream, SASL PLAIN (the test servers allow it without TLS), restart, bind; stanzas are checked from then on. */
  async login(username: string, password: string, opts: { resource?: string; header?: string } = {}): Promise<string> {
    await this.open();
    this.send(xml("auth", { xmlns: NS_SASL, mechanism: "PLAIN" }, Buffer.from(`\0${username}\0${password}`).toString("base64")).toString());
    const outcome = await this.receive((el) => el.attrs.xmlns === NS_SASL);
    if (outcome.name !== "success") throw new Error(`login failed: ${outcome.toString()}`);
    if (this.endpoint === "tcp") this.resetParser();
    await this.open(opts.header);
    this.send(xml("iq", { type: "set", id: "bind" }, xml("bind", { xmlns: "urn:ietf:params:xml:ns:xmpp-bind" }, opts.resource ? xml("resource", null, opts.resource) : null)).toString());
    const bound = await this.receive((el) => el.name === "iq" && el.attrs.id === "bind");
    if (this.endpoint === "tcp") this.check.beginStream();
    this.jid = bound.getChild("bind")!.getChildText("jid")!;
    return this.jid;
  }

  private pings = 0;

  /** A ping round trip to the server; rejects if it takes longer than `timeoutMs`. */
  async ping(timeoutMs = 5000): Promise<void> {
    const id = `ping${++this.pings}`;
    this.send(`<iq type='get' id='${id}' to='${this.ts.host}'><ping xmlns='urn:xmpp:ping'/></iq>`);
    await this.receive((el) => el.name === "iq" && el.attrs.id === id, timeoutMs);
  }

  /** Resolves when the connection is closed (by the server), or rejects after `timeoutMs`. */
  async closed(timeoutMs = 5000): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      this.closedPromise,
      new Promise((_, reject) => { timer = setTimeout(() => reject(new Error(`${this.endpoint}: the server did not close the connection`)), timeoutMs); }),
    ]).finally(() => clearTimeout(timer));
  }

  close(): void {
    this.socket?.destroy();
    this.ws?.terminate();
  }
}
