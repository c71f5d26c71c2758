// A small BOSH client (XEP-0124 + XEP-0206) over node:http, for tests: @xmpp/client has no BOSH transport.
// Every request is a real HTTP POST; `reconnect()` moves the following requests to new TCP connections.
import http from "node:http";
import { DOMParser } from "@xmldom/xmldom";
import { parseFramedElement } from "../../src/xml/parser.js";
import { Element, xml } from "../../src/xml/element.js";
import type { TestServer } from "./server.js";

export const NS_HTTPBIND = "http://jabber.org/protocol/httpbind";
const NS_XBOSH = "urn:xmpp:xbosh";
const NS_SASL = "urn:ietf:params:xml:ns:xmpp-sasl";
const NS_BIND = "urn:ietf:params:xml:ns:xmpp-bind";

export interface BoshResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  text: string;
  body: Element | null;
  /** The client-side port of the TCP connection the answer came over. */
  localPort: number;
}

interface Waiter { match: (el: Element) => boolean; resolve: (el: Element) => void; reject: (e: Error) => void; timer: NodeJS.Timeout }

/** One HTTP POST of `text` to the BOSH endpoint. */
export function post(port: number, text: string, opts: { agent?: http.Agent; path?: string; headers?: Record<string, string>; method?: string } = {}): Promise<BoshResponse> {
  return new Promise((resolve, reject) => {
    const req = http.request({
      host: "127.0.0.1", port, path: opts.path ?? "/http-bind", method: opts.method ?? "POST", agent: opts.agent,
      headers: { "content-type": "text/xml; charset=utf-8", ...opts.headers },
    }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("error", reject);
      res.on("end", () => {
        const body = Buffer.concat(chunks).toString("utf8");
        let el: Element | null = null;
        try { el = body ? parseFramedElement(body) : null; } catch { el = null; }
        resolve({ status: res.statusCode ?? 0, headers: res.headers, text: body, body: el, localPort: req.socket?.localPort ?? 0 });
      });
    });
    req.on("error", reject);
    req.end(text);
  });
}

export function bodyXml(attrs: Record<string, string>, children: Array<Element | string> = []): string {
  const open = xml("body", { xmlns: NS_HTTPBIND, ...attrs }).toString().replace(/\/>$/, ">");
  return `${open}${children.map(String).join("")}</body>`;
}

export class BoshClient {
  sid = "";
  rid: number;
  jid = "";
  /** The attributes of the session creation response. */
  created: Record<string, string> = {};
  /** Local ports of the TCP connections answers came over. */
  readonly ports: number[] = [];
  inbox: Element[] = [];
  private waiters: Waiter[] = [];
  private agent = new http.Agent({ keepAlive: true });
  private polling = false;
  private inFlight = 0;
  /** The terminate body, once the server ended the session. */
  terminated: Element | null = null;

  private constructor(readonly ts: TestServer, firstRid: number) {
    this.rid = firstRid;
  }

  /** XEP-0206 §4: a session request. */
  static async connect(ts: TestServer, opts: { wait?: number; hold?: number; to?: string } = {}): Promise<BoshClient> {
    const c = new BoshClient(ts, 1000 + Math.floor(Math.random() * 1_000_000));
    const r = await c.request({
      to: opts.to ?? ts.host, wait: String(opts.wait ?? 10), hold: String(opts.hold ?? 1), ver: "1.11",
      "xml:lang": "en", "xmlns:xmpp": NS_XBOSH, "xmpp:version": "1.0",
    });
    if (!r.body || r.body.attrs.type === "terminate") throw new Error(`session refused: ${r.text}`);
    c.created = r.body.attrs;
    c.sid = r.body.attrs.sid;
    return c;
  }

  /** Sends the next rid with `attrs` and `children`; the answer's children go to the inbox. */
  async request(attrs: Record<string, string> = {}, children: Array<Element | string> = [], rid = this.rid++): Promise<BoshResponse> {
    const all = { rid: String(rid), ...(this.sid ? { sid: this.sid } : {}), ...attrs };
    this.inFlight++;
    let r: BoshResponse;
    try {
      r = await post(this.ts.httpPort, bodyXml(all, children), { agent: this.agent });
    } finally {
      this.inFlight--;
    }
    this.ports.push(r.localPort);
    if (r.body) {
      if (r.body.attrs.type === "terminate") this.terminated = r.body;
      for (const c of r.body.children) if (c instanceof Element) this.deliver(c);
    }
    return r;
  }

  private deliver(el: Element): void {
    const i = this.waiters.findIndex((w) => w.match(el));
    if (i >= 0) {
      const [w] = this.waiters.splice(i, 1);
      clearTimeout(w.timer);
      w.resolve(el);
    } else this.inbox.push(el);
  }

  /** The first element (already received or still to come) that matches. */
  receive(match: (el: Element) => boolean, timeoutMs = 15_000): Promise<Element> {
    const i = this.inbox.findIndex(match);
    if (i >= 0) return Promise.resolve(this.inbox.splice(i, 1)[0]);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w.timer !== timer);
        reject(new Error("timed out waiting for an element over BOSH"));
      }, timeoutMs);
      this.waiters.push({ match, resolve, reject, timer });
    });
  }

  /** SASL PLAIN, the restart (xmpp:restart) and resource binding, one request each. */
  async login(username: string, password: string, resource = "bosh"): Promise<void> {
    await this.receive((el) => el.name === "stream:features");
    const auth = Buffer.from(`\0${username}\0${password}`).toString("base64");
    await this.request({}, [xml("auth", { xmlns: NS_SASL, mechanism: "PLAIN" }, auth)]);
    const outcome = await this.receive((el) => el.attrs.xmlns === NS_SASL && (el.name === "success" || el.name === "failure"));
    if (outcome.name !== "success") throw new Error(`SASL failed: ${outcome.toString()}`);
    await this.request({ "xmpp:restart": "true", "xmlns:xmpp": NS_XBOSH, to: this.ts.host });
    const features = await this.receive((el) => el.name === "stream:features");
    if (!features.getChild("bind", NS_BIND)) throw new Error("no bind feature after the restart");
    await this.request({}, [xml("iq", { xmlns: "jabber:client", type: "set", id: "bind1" }, xml("bind", { xmlns: NS_BIND }, xml("resource", null, resource)))]);
    const bound = await this.receive((el) => el.name === "iq" && el.attrs.id === "bind1");
    if (bound.attrs.type !== "result") throw new Error(`bind failed: ${bound.toString()}`);
    this.jid = bound.getChild("bind", NS_BIND)!.getChildText("jid") ?? "";
  }

  /** Keeps one request waiting at the server, as a BOSH client does between sends. */
  startPolling(): void {
    if (this.polling) return;
    this.polling = true;
    void (async () => {
      while (this.polling && !this.terminated) {
        const rid = this.rid++;
        // A request lost with its connection is sent again with the same rid (XEP-0124 §14.3).
        for (let attempt = 0; ; attempt++) {
          try { await this.request({}, [], rid); break; } catch (err) {
            if (attempt >= 3 || !this.polling) { this.polling = false; return; }
          }
        }
      }
    })();
  }

  stopPolling(): void { this.polling = false; }

  /** Sends stanzas in a request of their own (held by the server like any other). */
  send(...stanzas: Element[]): Promise<BoshResponse> {
    for (const s of stanzas) if (s.attrs.xmlns === undefined) s.attrs.xmlns = "jabber:client";
    return this.request({}, stanzas);
  }

  /** Later requests go over new TCP connections; the old ones (and a request held on them) are cut. */
  reconnect(): void {
    const old = this.agent;
    this.agent = new http.Agent({ keepAlive: true });
    old.destroy();
  }

  async terminate(): Promise<BoshResponse> {
    this.polling = false;
    return this.request({ type: "terminate" }, [xml("presence", { xmlns: "jabber:client", type: "unavailable" })]);
  }

  close(): void {
    this.polling = false;
    this.agent.destroy();
    for (const w of this.waiters) { clearTimeout(w.timer); w.reject(new Error("closed")); }
    this.waiters = [];
  }

  get pending(): number { return this.inFlight; }
}

/**
 * XMLHttpRequest over node:http, enough for Strophe.js's BOSH transport (the browser API Node lacks):
 * open, setRequestHeader, send, abort, readyState 4 with status, responseText and responseXML.
 */
export class NodeXhr {
  readyState = 0;
  status = 0;
  responseText = "";
  responseXML: Document | null = null;
  withCredentials = false;
  onreadystatechange: (() => void) | null = null;
  private url = "";
  private method = "POST";
  private headers: Record<string, string> = {};
  private responseHeaders = "";
  private req: http.ClientRequest | null = null;
  private aborted = false;
  /** Every request goes through this agent (tests cut its connections). */
  static agent = new http.Agent({ keepAlive: true });

  open(method: string, url: string): void {
    this.method = method;
    this.url = url;
    this.change(1);
  }

  setRequestHeader(name: string, value: string): void { this.headers[name] = value; }
  overrideMimeType(): void {}
  getAllResponseHeaders(): string { return this.responseHeaders; }

  send(body?: string): void {
    const u = new URL(this.url);
    const req = http.request({ host: u.hostname, port: u.port, path: u.pathname, method: this.method, headers: this.headers, agent: NodeXhr.agent }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("error", () => this.fail());
      res.on("end", () => {
        this.status = res.statusCode ?? 0;
        this.responseText = Buffer.concat(chunks).toString("utf8");
        this.responseHeaders = Object.entries(res.headers).map(([k, v]) => `${k}: ${String(v)}`).join("\r\n");
        try {
          this.responseXML = new DOMParser().parseFromString(this.responseText, "text/xml") as unknown as Document;
        } catch { this.responseXML = null; }
        this.change(4);
      });
    });
    req.on("error", () => this.fail());
    this.req = req;
    req.end(body);
  }

  abort(): void {
    this.aborted = true;
    this.req?.destroy();
  }

  private fail(): void {
    this.status = 0;
    this.change(4);
  }

  private change(state: number): void {
    if (this.aborted || (this.readyState === 4 && state === 4)) return;
    this.readyState = state;
    this.onreadystatechange?.();
  }
}
