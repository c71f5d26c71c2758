// XMPP over BOSH (XEP-0124, XEP-0206): long-polling HTTP requests carry a client stream. Each BOSH
// session is one C2sSession over a BoshTransport, in the framed mode WebSocket uses (one element at a
// time, `<open/>` for the stream header): the body's children go in, the session's output waits for a
// held request and leaves as the children of its response.
import type http from "node:http";
import { randomBytes } from "node:crypto";
import { C2sSession, type StreamTransport } from "./session.js";
import type { C2sContext } from "./context.js";
import { Element, xml } from "../xml/element.js";
import { parseFramedElement } from "../xml/parser.js";
import { NS } from "../xml/ns.js";
import { jid as makeJid } from "../jid/jid.js";
import { OutboundGuard } from "../sessions/outbound.js";
import { readBoundedBody } from "../http/body.js";

export const NS_HTTPBIND = "http://jabber.org/protocol/httpbind";
export const NS_XBOSH = "urn:xmpp:xbosh";
/** Room for the `<body>` wrapper around a request's payload, on top of limits.maxStanzaBytes. */
const WRAPPER_BYTES = 1024;
/** Largest rid a client may start with (XEP-0124 §14.1: 2^53 - 1 must never be exceeded). */
const MAX_RID = Number.MAX_SAFE_INTEGER;

export interface BoshOptions {
  path: string;
  maxWait: number;
  maxHold: number;
  inactivitySeconds: number;
  corsOrigins: readonly string[];
}

/** Counts the new session against the connection limits; false (after closing it) when over one. */
export type Admit = (session: C2sSession, addr: string, onClose: (cb: () => void) => void) => boolean;

/** XEP-0124 §17: terminal binding conditions this endpoint reports. */
type Condition = "bad-request" | "host-unknown" | "item-not-found" | "policy-violation" | "remote-stream-error" | "undefined-condition";

/** CORS headers for a browser request from `origin` (XEP-0156 §3.2.1, XEP-0124 §23 on cross-domain use). */
export function corsHeaders(origins: readonly string[], origin: string | undefined): Record<string, string> {
  if (origins.length === 0) return { "access-control-allow-origin": "*" };
  const o = origin?.toLowerCase();
  if (o && origins.includes(o)) return { "access-control-allow-origin": o, vary: "Origin" };
  return { vary: "Origin" };
}

function bodyText(attrs: Record<string, string>, payload = ""): string {
  const el = xml("body", { xmlns: NS_HTTPBIND, ...attrs });
  const open = el.toString().replace(/\/>$/, ">");
  return `${open}${payload}</body>`;
}

function terminateText(condition?: Condition, payload = ""): string {
  return bodyText(condition ? { type: "terminate", condition } : { type: "terminate" }, payload);
}

function parseRid(value: string | undefined): number | null {
  if (value === undefined || !/^\d{1,16}$/.test(value)) return null;
  const n = Number(value);
  return n >= 1 && n <= MAX_RID ? n : null;
}

function parsePositive(value: string | undefined): number | null {
  if (value === undefined || !/^\d{1,9}$/.test(value)) return null;
  return Number(value);
}

/** The BOSH endpoint on the HTTP port: request parsing, sessions by sid, CORS. */
export class BoshEndpoint {
  private readonly sessions = new Map<string, BoshTransport>();
  readonly maxBodyBytes: number;

  constructor(private readonly ctx: C2sContext, readonly opts: BoshOptions, private readonly admit: Admit, private readonly isSecure: (addr: string) => boolean) {
    this.maxBodyBytes = ctx.config.limits.maxStanzaBytes + WRAPPER_BYTES;
  }

  get size(): number { return this.sessions.size; }

  /** @internal a transport that ended leaves the table. */
  forget(sid: string): void { this.sessions.delete(sid); }

  handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const cors = corsHeaders(this.opts.corsOrigins, req.headers.origin);
    if (req.method === "OPTIONS") {
      res.writeHead(204, {
        ...cors,
        "access-control-allow-methods": "POST, OPTIONS",
        "access-control-allow-headers": "Content-Type",
        "access-control-max-age": "86400",
      });
      res.end();
      return;
    }
    if (req.method !== "POST") {
      res.writeHead(405, { ...cors, allow: "POST, OPTIONS", "content-type": "text/plain" });
      res.end("BOSH (XEP-0206): POST a <body/>\n");
      return;
    }
    readBoundedBody(req, this.maxBodyBytes).then((body) => {
      if (body !== null) return this.onBody(req, res, cors, body.toString("utf8"));
      // The request is not read further; the connection goes with it.
      res.writeHead(413, { ...cors, "content-type": "text/xml; charset=utf-8", connection: "close" });
      res.end(terminateText("policy-violation"));
      req.destroy();
    }, () => { /* the request failed: nobody to answer */ });
  }

  private onBody(req: http.IncomingMessage, res: http.ServerResponse, cors: Record<string, string>, text: string): void {
    const reply = (status: number, body: string) => {
      res.writeHead(status, { ...cors, "content-type": "text/xml; charset=utf-8", "cache-control": "no-store" });
      res.end(body);
    };
    let body: Element;
    try {
      body = parseFramedElement(text, { maxStanzaBytes: this.maxBodyBytes });
    } catch {
      return reply(400, terminateText("bad-request"));
    }
    if (body.name !== "body" || body.attrs.xmlns !== NS_HTTPBIND) return reply(400, terminateText("bad-request"));
    const rid = parseRid(body.attrs.rid);
    const sid = body.attrs.sid;
    if (sid === undefined) {
      if (rid === null) return reply(400, terminateText("bad-request"));
      return this.create(req, res, cors, body, rid);
    }
    const transport = this.sessions.get(sid);
    // XEP-0124 §17.2: an unknown (or ended) sid is item-not-found.
    if (!transport) return reply(200, terminateText("item-not-found"));
    if (rid === null) {
      reply(200, terminateText("bad-request"));
      return transport.fail("bad-request");
    }
    transport.onRequest(body, rid, res, cors);
  }

  /** XEP-0124 §7.1, XEP-0206 §4: a session request. */
  private create(req: http.IncomingMessage, res: http.ServerResponse, cors: Record<string, string>, body: Element, rid: number): void {
    const refuse = (condition: Condition) => {
      res.writeHead(200, { ...cors, "content-type": "text/xml; charset=utf-8", "cache-control": "no-store" });
      res.end(terminateText(condition));
    };
    const to = body.attrs.to;
    if (!to) return refuse("bad-request");
    let host: string;
    try { host = makeJid("", to).domain; } catch { return refuse("host-unknown"); }
    if (!this.ctx.config.hosts.includes(host)) return refuse("host-unknown");
    const { maxWait, maxHold } = this.opts;
    const askedWait = parsePositive(body.attrs.wait);
    const askedHold = parsePositive(body.attrs.hold);
    const wait = askedWait === null ? maxWait : Math.min(Math.max(askedWait, 1), maxWait);
    // XEP-0124 §7.1: never more than the client asked for; hold 0 is a polling client, answered at once.
    const hold = askedHold === null ? 1 : Math.min(askedHold, maxHold);
    let sid: string;
    do sid = randomBytes(16).toString("hex"); while (this.sessions.has(sid));
    const addr = req.socket.remoteAddress ?? "unknown";
    const transport = new BoshTransport(this, this.ctx, sid, addr, this.isSecure(addr), { wait, hold, rid });
    const session = new C2sSession(this.ctx, transport);
    transport.session = session;
    this.sessions.set(sid, transport);
    this.ctx.log.debug({ session: session.id, sid, addr, wait, hold }, "BOSH session");
    // Over a connection limit, the session is closed at once and the answer to this request says so.
    this.admit(session, addr, (cb) => transport.onEnded(cb));
    transport.start(rid, res, cors, host);
  }

  /** Server shutdown: every held request is answered (the sessions were closed first). */
  close(): void {
    for (const t of [...this.sessions.values()]) if (!t.isEnding) t.fail("undefined-condition");
  }
}

interface Held {
  rid: number;
  res: http.ServerResponse;
  cors: Record<string, string>;
  timer: NodeJS.Timeout | null;
  /** Session creation: the attributes of XEP-0124 §7.1 go on this one's answer. */
  creation: boolean;
}

interface Pending { body: Element; res: http.ServerResponse; cors: Record<string, string> }

export class BoshTransport implements StreamTransport {
  readonly kind = "bosh" as const;
  readonly framed = true;
  readonly canStartTls = false;
  session!: C2sSession;
  private readonly wait: number;
  private readonly hold: number;
  /** XEP-0124 §7.1: how many requests the client may have open at once. */
  private readonly requests: number;
  private nextRid: number;
  private host = "";
  private streamId = "";
  private readonly held: Held[] = [];
  private readonly pending = new Map<number, Pending>();
  /** The last answers by rid, for a client that lost one and asks again (XEP-0124 §14.3). */
  private readonly answered = new Map<number, string>();
  private out: string[] = [];
  private outBytes = 0;
  private flushedCallbacks: Array<(err?: Error | null) => void> = [];
  private flushScheduled = false;
  private readonly guard: OutboundGuard;
  private inactivity: NodeJS.Timeout | null = null;
  /** The session ended its stream: the next answer terminates the BOSH session. */
  private ending = false;
  private streamErrorSeen = false;
  /** Nothing more goes in or out; the session was told its connection is gone. */
  private dead = false;
  private paused = false;
  private inbound: string[] = [];
  private readonly endedCallbacks: Array<() => void> = [];

  constructor(
    private readonly endpoint: BoshEndpoint,
    private readonly ctx: C2sContext,
    readonly sid: string,
    readonly remoteAddress: string,
    readonly secure: boolean,
    o: { wait: number; hold: number; rid: number },
  ) {
    this.wait = o.wait;
    this.hold = o.hold;
    this.requests = o.hold + 1;
    this.nextRid = o.rid + 1;
    this.guard = new OutboundGuard(ctx.config.c2s.maxOutboundBytes);
  }

  onEnded(cb: () => void): void { this.endedCallbacks.push(cb); }

  /** The stream ended; its last answer is still to go. */
  get isEnding(): boolean { return this.ending; }

  /** The session request is held like any other; its answer carries the session's parameters. */
  start(rid: number, res: http.ServerResponse, cors: Record<string, string>, host: string): void {
    this.host = host;
    this.holdRequest({ rid, res, cors, timer: null, creation: true });
    this.openStream();
    this.settle();
  }

  private openStream(): void {
    this.input(xml("open", { xmlns: NS.framing, to: this.host, version: "1.0" }).toString());
  }

  // ---- requests ----

  onRequest(body: Element, rid: number, res: http.ServerResponse, cors: Record<string, string>): void {
    if (this.dead) {
      res.writeHead(200, { ...cors, "content-type": "text/xml; charset=utf-8" });
      res.end(terminateText("item-not-found"));
      return;
    }
    this.session.lastActivity = Date.now();
    if (rid < this.nextRid) {
      const again = this.answered.get(rid);
      if (again !== undefined) return this.send(res, cors, again);
      const waiting = this.held.find((h) => h.rid === rid);
      if (waiting) {
        // The client sent it again (its connection broke while we held it): the new one waits instead.
        this.release(waiting, "");
        return this.holdRequest({ rid, res, cors, timer: null, creation: false });
      }
      return this.refuse(res, cors, "item-not-found");
    }
    // XEP-0124 §14.2: a rid beyond the window ends the session.
    if (rid >= this.nextRid + this.requests) return this.refuse(res, cors, "item-not-found");
    this.pending.set(rid, { body, res, cors });
    // XEP-0124 §11: more simultaneous requests than `requests` is overactivity.
    if (this.held.length + this.pending.size > this.requests) return this.refuse(res, cors, "policy-violation");
    let next: Pending | undefined;
    while ((next = this.pending.get(this.nextRid)) !== undefined && !this.dead) {
      this.pending.delete(this.nextRid);
      this.process(this.nextRid++, next);
    }
  }

  private process(rid: number, { body, res, cors }: Pending): void {
    this.holdRequest({ rid, res, cors, timer: null, creation: false });
    if (body.attrs["xmpp:restart"] === "true") {
      // XEP-0206 §5: the stream restart after SASL.
      this.openStream();
    } else {
      const children = body.children.filter((c): c is Element => c instanceof Element);
      if (children.length) this.input(children.map((c) => this.stanzaText(c)).join(""));
    }
    if (body.attrs.type === "terminate") {
      // XEP-0124 §12: the stream ends after whatever came with it, as a WebSocket `<close/>` would end it
      // (and reaches the session this stream resumed, if it resumed one).
      this.input(xml("close", { xmlns: NS.framing }).toString());
    }
    this.settle();
  }

  /** A child of `<body/>` as the session's framed parser wants it: stanzas qualified by jabber:client. */
  private stanzaText(el: Element): string {
    if ((el.name === "message" || el.name === "presence" || el.name === "iq") && (el.attrs.xmlns === undefined || el.attrs.xmlns === NS_HTTPBIND)) {
      el.attrs.xmlns = NS.client;
    }
    return el.toString();
  }

  private input(text: string): void {
    if (this.paused) { this.inbound.push(text); return; }
    this.session.onData(text);
  }

  private holdRequest(h: Held): void {
    h.timer = setTimeout(() => { h.timer = null; this.answer(h); }, this.wait * 1000);
    h.timer.unref();
    this.held.push(h);
    this.held.sort((a, b) => a.rid - b.rid);
    h.res.on("close", () => {
      if (h.res.writableFinished) return;
      // The client went away from this request: it can ask for this rid again and get an empty answer.
      const i = this.held.indexOf(h);
      if (i < 0) return;
      this.held.splice(i, 1);
      if (h.timer) clearTimeout(h.timer);
      this.remember(h.rid, bodyText({}));
      this.idle();
    });
    if (this.inactivity) { clearTimeout(this.inactivity); this.inactivity = null; }
  }

  /** Answers what must be answered now: output waiting, or more requests held than `hold`. */
  private settle(): void {
    if (this.dead) return;
    if (this.ending) return this.finish();
    while (this.held.length > 0 && (this.out.length > 0 || this.held.length > this.hold)) this.answer(this.held[0]);
  }

  private answer(h: Held): void {
    const payload = this.out.join("");
    const callbacks = this.flushedCallbacks;
    this.out = [];
    this.outBytes = 0;
    this.flushedCallbacks = [];
    this.release(h, payload, callbacks);
  }

  private release(h: Held, payload: string, callbacks: Array<(err?: Error | null) => void> = [], attrs: Record<string, string> = {}): void {
    const i = this.held.indexOf(h);
    if (i >= 0) this.held.splice(i, 1);
    if (h.timer) { clearTimeout(h.timer); h.timer = null; }
    const all = h.creation ? { ...this.creationAttrs(), ...attrs } : attrs;
    const text = bodyText(all, payload);
    this.remember(h.rid, text);
    this.send(h.res, h.cors, text, callbacks);
    this.idle();
  }

  private creationAttrs(): Record<string, string> {
    return {
      sid: this.sid,
      wait: String(this.wait),
      hold: String(this.hold),
      requests: String(this.requests),
      inactivity: String(this.endpoint.opts.inactivitySeconds),
      // Polling (a request answered at once) is allowed as often as every second.
      polling: "1",
      ver: "1.11",
      from: this.host,
      authid: this.streamId,
      // Between the connection manager and the server (this process): nothing travels outside it.
      secure: "true",
      "xmlns:xmpp": NS_XBOSH,
      "xmpp:version": "1.0",
      "xmpp:restartlogic": "true",
      "xmlns:stream": NS.stream,
    };
  }

  private remember(rid: number, text: string): void {
    this.answered.set(rid, text);
    for (const r of this.answered.keys()) {
      if (this.answered.size <= this.requests) break;
      this.answered.delete(r);
    }
  }

  private send(res: http.ServerResponse, cors: Record<string, string>, text: string, callbacks: Array<(err?: Error | null) => void> = []): void {
    if (res.writableEnded || res.destroyed) return;
    res.writeHead(200, { ...cors, "content-type": "text/xml; charset=utf-8", "cache-control": "no-store" });
    res.end(text, () => { for (const cb of callbacks) cb(); });
  }

  /** No request held: the inactivity clock runs (XEP-0124 §7.1 `inactivity`). */
  private idle(): void {
    if (this.dead || this.held.length > 0 || this.inactivity) return;
    this.inactivity = setTimeout(() => {
      this.inactivity = null;
      if (this.held.length > 0 || this.dead) return;
      this.ctx.log.debug({ session: this.session.id, sid: this.sid }, "BOSH session inactive");
      this.drop("inactivity");
    }, this.endpoint.opts.inactivitySeconds * 1000);
    this.inactivity.unref();
  }

  private refuse(res: http.ServerResponse, cors: Record<string, string>, condition: Condition): void {
    this.send(res, cors, terminateText(condition));
    this.fail(condition);
  }

  /** Ends the BOSH session for a binding error: held requests are told, the session loses its connection. */
  fail(condition: Condition): void {
    if (this.dead) return;
    for (const h of [...this.held]) this.release(h, "", [], { type: "terminate", condition });
    for (const p of this.pending.values()) this.send(p.res, p.cors, terminateText(condition));
    this.pending.clear();
    this.drop(condition);
  }

  /** The connection is gone: the session reacts as to a dropped socket (XEP-0198 resumption applies). */
  private drop(reason: string): void {
    if (this.dead) return;
    this.dead = true;
    if (this.inactivity) { clearTimeout(this.inactivity); this.inactivity = null; }
    for (const h of this.held) if (h.timer) clearTimeout(h.timer);
    this.held.length = 0;
    // Requests still waiting for a gap in the rids to fill will not be processed.
    for (const p of this.pending.values()) this.send(p.res, p.cors, terminateText("item-not-found"));
    this.pending.clear();
    this.out = [];
    this.flushedCallbacks = [];
    this.endpoint.forget(this.sid);
    this.session.onTransportClose(reason);
    for (const cb of this.endedCallbacks) cb();
  }

  /** The stream ended: the oldest held request takes the rest of the output with type='terminate'. */
  private finish(): void {
    const h = this.held[0];
    if (!h) return;
    const condition: Record<string, string> = this.streamErrorSeen ? { condition: "remote-stream-error" } : {};
    const payload = this.out.join("");
    const callbacks = this.flushedCallbacks;
    this.out = [];
    this.flushedCallbacks = [];
    this.release(h, payload, callbacks, { type: "terminate", ...condition });
    for (const other of [...this.held]) this.release(other, "", [], { type: "terminate", ...condition });
    this.drop("terminated");
  }

  // ---- StreamTransport ----

  get unsent(): number { return this.outBytes; }

  write(data: string, flushed?: (err?: Error | null) => void): void {
    if (this.dead) return;
    if (data.startsWith("<open ")) {
      // The header has no place in BOSH: its id is the session's authid (XEP-0206 §4).
      this.streamId = /\sid='([^']*)'/.exec(data)?.[1] ?? this.streamId;
      return;
    }
    if (data.startsWith("<close ")) return;
    if (data.startsWith("<stream:error")) this.streamErrorSeen = true;
    this.out.push(data);
    this.outBytes += data.length;
    this.guard.wrote(data.length);
    if (flushed) this.flushedCallbacks.push(flushed);
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      // Writes made in one tick leave in one answer.
      process.nextTick(this.flush);
    }
  }

  private readonly flush = (): void => {
    this.flushScheduled = false;
    if (this.dead) return;
    if (this.held.length === 0) {
      if (!this.ending && this.guard.exceeded(this.outBytes)) this.session.outputOverflow(this.outBytes);
      return;
    }
    this.settle();
  };

  end(): void {
    if (this.dead || this.ending) return;
    this.ending = true;
    // Answered once this tick's output is in: now if a request is held, else at the client's next one.
    process.nextTick(() => {
      if (this.dead) return;
      if (this.held.length > 0) return this.finish();
      // A client that never comes back: the session is gone after the inactivity period.
      this.idle();
    });
  }

  pause(): void { this.paused = true; }

  resume(): void {
    this.paused = false;
    const queued = this.inbound;
    this.inbound = [];
    for (const text of queued) {
      if (this.paused) { this.inbound.push(text); continue; }
      this.session.onData(text);
    }
  }
}
