// One client stream (RFC 6120): header, STARTTLS, SASL, restart, bind, then stanzas to the router.
// The same state machine serves TCP, direct TLS and WebSocket (RFC 7395); only framing differs.
import { Element, xml } from "../xml/element.js";
import { NS } from "../xml/ns.js";
import { StreamParser, type XmlError } from "../xml/parser.js";
import { errorReply, iqPayload, reply, streamError, type StreamErrorCondition } from "../xml/stanza.js";
import { jid as makeJid, resourceprep, nodeprep, type Jid } from "../jid/jid.js";
import { createMechanism, offeredMechanisms, SaslError, type SaslMechanism } from "./sasl/index.js";
import { newSessionId, type DeliveryMeta, type Session, type Transport } from "../sessions/session.js";
import { claimResource } from "../sessions/bind.js";
import type { LoginThrottled } from "../auth/login.js";
import type { C2sContext } from "./context.js";
import { randomBytes } from "node:crypto";
import { contain } from "../log.js";

/** What a session needs from the connection under it. */
export interface StreamTransport {
  readonly kind: Exclude<Transport, "mobile">;
  /** RFC 7395 framing: every element is one WebSocket message, `<open/>`/`<close/>` instead of the stream tags. */
  readonly framed: boolean;
  readonly remoteAddress: string;
  readonly secure: boolean;
  /** TCP only: switches the connection to TLS (RFC 6120 §5) after `<proceed/>` was written. */
  readonly canStartTls: boolean;
  startTls?(): void;
  /** `flushed` is called without an error once the data has left the process (handed to the kernel). */
  write(data: string, flushed?: (err?: Error | null) => void): void;
  /** Closes after pending writes are flushed. */
  end(): void;
  pause(): void;
  resume(): void;
}

type State = "header" | "open" | "closed";
const STANZAS = new Set(["message", "presence", "iq"]);
const MAX_QUEUED = 64;
const MAX_SASL_FAILURES_PER_STREAM = 3;

export class C2sSession implements Session {
  readonly id = newSessionId();
  readonly data = new Map<string, unknown>();
  username: string | null = null;
  jid: Jid | null = null;
  presence: Element | null = null;
  priority = 0;
  interested = false;
  directed: Set<string> | null = null;
  host: string;
  closed = false;

  readonly openedAt = Date.now();
  lastActivity = this.openedAt;
  pingSentAt = 0;

  private state: State = "header";
  private headerSent = false;
  private authenticated = false;
  private parser: StreamParser;
  private sasl: SaslMechanism | null = null;
  private saslFailures = 0;
  private saslUser: string | null = null;
  private queue: Element[] | null = null;
  private busy = false;
  private paused = false;
  private tokens: number;
  private lastRefill = Date.now();
  private throttleTimer: NodeJS.Timeout | null = null;
  /** Seqs of timeline rows sent to this session whose bytes are still queued in this process. */
  private unflushed: Set<number> | null = null;

  constructor(private readonly ctx: C2sContext, private readonly transport: StreamTransport) {
    this.host = ctx.config.hosts[0];
    this.tokens = ctx.config.limits.stanzaBurst;
    this.parser = this.newParser();
    ctx.tracker.add(this);
  }

  get protocol(): Transport { return this.transport.kind; }
  get remoteAddress(): string { return this.transport.remoteAddress; }
  get secure(): boolean { return this.transport.secure; }
  get isAuthenticated(): boolean { return this.authenticated; }

  private newParser(): StreamParser {
    return new StreamParser({
      onStreamStart: (name, attrs) => this.onStreamStart(name, attrs),
      onStanza: (el) => this.onElement(el),
      onStreamEnd: () => this.onStreamEnd(),
      onError: (err: XmlError) => this.close(err.condition, err.message),
    }, { framed: this.transport.framed, limits: { maxStanzaBytes: this.ctx.config.limits.maxStanzaBytes } });
  }

  /** Raw input from the transport (TCP bytes, or one WebSocket message). */
  onData(chunk: Buffer | string): void {
    if (this.closed) return;
    this.lastActivity = Date.now();
    this.pingSentAt = 0;
    this.parser.write(chunk);
  }

  /** The transport closed under us (clean or abrupt), or after we closed it. */
  onTransportClose(reason = "disconnected"): void {
    this.offerUnflushedAgain();
    if (this.closed) return;
    this.closed = true;
    this.cleanup(reason);
  }

  // ---- output ----

  send(stanza: Element, meta?: DeliveryMeta): void {
    if (this.closed) return;
    if (this.ctx.logStanzas) this.ctx.log.debug({ session: this.id, out: stanza.toString() }, "stanza out");
    const flushed = meta && this.jid ? this.trackFlush(meta.seq) : undefined;
    if (this.transport.framed && STANZAS.has(stanza.name) && stanza.attrs.xmlns === undefined) {
      // RFC 7395 §3.3: each WebSocket message is a standalone document, so stanzas carry their namespace.
      stanza.attrs.xmlns = NS.client;
      const s = stanza.toString();
      delete stanza.attrs.xmlns;
      this.transport.write(s, flushed);
    } else {
      this.transport.write(stanza.toString(), flushed);
    }
  }

  private trackFlush(seq: number): (err?: Error | null) => void {
    (this.unflushed ??= new Set()).add(seq);
    return (err) => { if (!err) this.unflushed?.delete(seq); };
  }

  /**
   * The connection is gone: rows whose bytes never left the process were not received, so they become
   * offline messages again (XEP-0160) for the next login; the archive holds them either way.
   */
  private offerUnflushedAgain(): void {
    const seqs = this.unflushed;
    this.unflushed = null;
    if (!seqs?.size || !this.jid) return;
    const owner = this.jid.bareString();
    this.ctx.store.timeline.markPending(owner, [...seqs]).catch((err: unknown) => {
      this.ctx.log.error({ err, session: this.id, owner }, "could not keep undelivered messages for the next login");
    });
  }

  /** Called by the transport when its peer leaves more than c2s.maxOutboundBytes unread. */
  outputOverflow(queued: number): void {
    if (this.closed) return;
    this.ctx.log.warn({ session: this.id, jid: this.jid?.toString(), queued }, "closing a client that does not read its stream");
    // RFC 6120 §4.9.3.12: a local service policy (the outbound limit) was violated.
    this.close("policy-violation", "too much unread output: the client does not read its stream");
  }

  private writeRaw(s: string): void {
    if (!this.closed) this.transport.write(s);
  }

  close(error?: StreamErrorCondition, text?: string): void {
    if (this.closed) return;
    if (error) {
      if (!this.headerSent) this.sendHeader(null);
      const err = streamError(error, text);
      if (this.transport.framed) err.attrs["xmlns:stream"] = NS.stream;
      this.writeRaw(err.toString());
      this.ctx.log.debug({ session: this.id, error, text }, "stream error");
    }
    this.writeRaw(this.transport.framed ? `<close xmlns='${NS.framing}'/>` : "</stream:stream>");
    this.closed = true;
    this.transport.end();
    this.cleanup(error ?? "closed");
  }

  private cleanup(reason: string): void {
    this.state = "closed";
    if (this.throttleTimer) clearTimeout(this.throttleTimer);
    this.ctx.tracker.delete(this);
    if (this.jid && this.ctx.sessions.remove(this)) {
      void this.ctx.hooks.notify(this.host, "resource-unbind", { session: this, reason });
    }
  }

  // ---- stream header ----

  private sendHeader(id: string | null): void {
    this.headerSent = true;
    const sid = id ?? randomBytes(8).toString("hex");
    if (this.transport.framed) {
      this.writeRaw(`<open xmlns='${NS.framing}' from='${this.host}' id='${sid}' version='1.0' xml:lang='en'/>`);
    } else {
      this.writeRaw(`<?xml version='1.0'?><stream:stream xmlns='${NS.client}' xmlns:stream='${NS.stream}' from='${this.host}' id='${sid}' version='1.0' xml:lang='en'>`);
    }
  }

  private onStreamStart(name: string, attrs: Record<string, string>): void {
    // RFC 6120 §4.8: the stream namespace and the content namespace must be the ones we serve.
    const prefix = name.includes(":") ? name.slice(0, name.indexOf(":")) : "";
    const streamNs = prefix ? attrs[`xmlns:${prefix}`] : attrs.xmlns;
    if (name.slice(prefix ? prefix.length + 1 : 0) !== "stream" || streamNs !== NS.stream) return this.close("invalid-namespace", "not an XMPP stream");
    if (attrs.xmlns !== NS.client) return this.close("invalid-namespace", "this port serves jabber:client streams");
    this.openStream(attrs);
  }

  private openStream(attrs: Record<string, string>): void {
    const to = attrs.to;
    if (to !== undefined) {
      let host: string;
      try { host = makeJid("", to).domain; } catch { host = to; }
      if (!this.ctx.config.hosts.includes(host)) {
        return this.close("host-unknown", `${to} is not served here`);
      }
      if (this.authenticated && host !== this.host) return this.close("host-unknown", "the stream was restarted for another host");
      this.host = host;
    }
    const version = attrs.version;
    if (version === undefined || !/^\d+\.\d+$/.test(version) || Number(version.split(".")[0]) < 1) {
      return this.close("unsupported-version", "XMPP 1.0 or later is required");
    }
    this.state = "open";
    this.sendHeader(null);
    this.sendFeatures();
  }

  private sendFeatures(): void {
    const features = xml("stream:features", this.transport.framed ? { "xmlns:stream": NS.stream } : null);
    const cfg = this.ctx.config;
    if (!this.authenticated) {
      const tlsPending = !this.secure && this.transport.canStartTls;
      if (tlsPending) {
        features.cnode(xml("starttls", { xmlns: NS.tls }, cfg.c2s.requireTls ? xml("required") : null));
      }
      if (!(tlsPending && cfg.c2s.requireTls)) {
        const mechs = offeredMechanisms({ secure: this.secure, allowPlainInsecure: cfg.auth.allowPlainInsecure, enabled: cfg.auth.mechanisms });
        features.cnode(xml("mechanisms", { xmlns: NS.sasl }, ...mechs.map((m) => xml("mechanism", null, m))));
        for (const f of this.ctx.hooks.runFold(this.host, "stream-features", [], { session: this, authenticated: false })) features.cnode(f);
      }
    } else {
      features.cnode(xml("bind", { xmlns: NS.bind }));
      // RFC 6121 Appendix E (COMPAT: older clients still send it): advertised as optional.
      features.cnode(xml("session", { xmlns: NS.session }, xml("optional")));
      for (const f of this.ctx.hooks.runFold(this.host, "stream-features", [], { session: this, authenticated: true })) features.cnode(f);
    }
    this.send(features);
  }

  private onStreamEnd(): void {
    // RFC 6120 §4.4: answer the closing tag with ours, then close the connection.
    this.close();
  }

  // ---- elements: one at a time; the socket is paused while a handler awaits ----

  private onElement(el: Element): void {
    if (this.closed) return;
    if (this.queue !== null) {
      this.queue.push(el);
      if (this.queue.length >= MAX_QUEUED && !this.paused) { this.paused = true; this.transport.pause(); }
      return;
    }
    this.process(el);
  }

  private process(el: Element): void {
    if (this.jid && STANZAS.has(el.name)) {
      const wait = this.tokenWait();
      if (wait > 0) return this.deferForRate(el, wait);
    }
    const r = this.handleElement(el);
    if (r && typeof (r as Promise<unknown>).then === "function") {
      this.queue = [];
      this.busy = true;
      (r as Promise<unknown>).then(() => this.afterAsync(), (err) => {
        this.ctx.log.error({ err, session: this.id }, "element handler failed");
        this.afterAsync();
      });
    }
  }

  private afterAsync(): void {
    this.busy = false;
    const q = this.queue!;
    this.queue = null;
    let i = 0;
    while (i < q.length && !this.closed) {
      this.process(q[i++]);
      if (this.busy) {
        // Still waiting: keep the rest in order behind the new wait.
        this.queue!.push(...q.slice(i));
        return;
      }
    }
    if (this.paused && !this.closed) { this.paused = false; this.transport.resume(); }
  }

  private handleElement(el: Element): unknown {
    if (this.ctx.logStanzas) this.ctx.log.debug({ session: this.id, in: el.toString() }, "stanza in");
    if (this.transport.framed) {
      if (el.name === "open" && el.attrs.xmlns === NS.framing) return this.onFramedOpen(el);
      if (el.name === "close" && el.attrs.xmlns === NS.framing) return this.close();
      if (this.state !== "open") return this.close("not-authorized", "open the stream first");
    }
    const ns = el.attrs.xmlns;
    if (!this.authenticated) return this.handlePreAuth(el, ns);
    if (STANZAS.has(el.name) && (ns === undefined || ns === NS.client)) {
      if (!this.jid) return this.handleBind(el);
      return this.handleStanza(el);
    }
    if (this.jid) {
      const r = this.ctx.hooks.run(this.host, "stream-element", { session: this, element: el });
      if (r && typeof (r as Promise<unknown>).then === "function") {
        return (r as Promise<unknown>).then((v) => { if (!v) this.close("unsupported-stanza-type", `<${el.name}/> is not supported`); });
      }
      if (r) return undefined;
    }
    return this.close("unsupported-stanza-type", `<${el.name}/> is not supported here`);
  }

  private onFramedOpen(el: Element): void {
    if (el.attrs.xmlns !== NS.framing) return this.close("invalid-namespace");
    this.openStream({ ...el.attrs, xmlns: NS.client });
  }

  // ---- stanzas ----

  private handleStanza(el: Element): unknown {
    if (el.name === "iq") {
      const type = el.attrs.type;
      if (!el.attrs.id || (type !== "get" && type !== "set" && type !== "result" && type !== "error")) {
        // RFC 6120 §8.2.3: id and a known type are required.
        if (type !== "error") this.send(errorReply(el, "bad-request", "an iq needs an id and a type"));
        return undefined;
      }
      if (type === "set" && isLegacySession(el)) return this.send(reply(el));
    }
    return this.ctx.router.fromClient(this, el);
  }

  /**
   * Token bucket per session: a client over its rate is slowed down, not disconnected. Returns 0 when
   * the stanza may go now, else the milliseconds until a token is available.
   */
  private tokenWait(): number {
    const rate = this.ctx.config.limits.stanzasPerSecond;
    if (rate <= 0) return 0;
    const now = Date.now();
    this.tokens = Math.min(this.ctx.config.limits.stanzaBurst, this.tokens + ((now - this.lastRefill) * rate) / 1000);
    this.lastRefill = now;
    if (this.tokens >= 1) {
      this.tokens -= 1;
      return 0;
    }
    return Math.ceil(((1 - this.tokens) * 1000) / rate);
  }

  /** Holds `el` (and everything after it) until the bucket has a token again; reading pauses meanwhile. */
  private deferForRate(el: Element, wait: number): void {
    this.queue = [el];
    this.busy = true;
    if (!this.paused) { this.paused = true; this.transport.pause(); }
    this.throttleTimer = setTimeout(() => {
      this.throttleTimer = null;
      if (!this.closed) this.afterAsync();
    }, wait);
  }

  // ---- before authentication: STARTTLS, SASL, in-band registration ----

  private handlePreAuth(el: Element, ns: string | undefined): unknown {
    const cfg = this.ctx.config;
    if (el.name === "starttls" && ns === NS.tls) return this.startTls();
    if (cfg.c2s.requireTls && !this.secure && this.transport.canStartTls) {
      // RFC 6120 §5.3.1: TLS is mandatory-to-negotiate here.
      return this.close("policy-violation", "STARTTLS is required");
    }
    if (ns === NS.sasl) return this.handleSasl(el);
    if (el.name === "iq" && (ns === undefined || ns === NS.client)) {
      const payload = iqPayload(el);
      const type = el.attrs.type;
      if (!payload || !el.attrs.id || (type !== "get" && type !== "set")) {
        if (type !== "error" && type !== "result") this.send(errorReply(el, "bad-request"));
        return undefined;
      }
      const r = this.ctx.hooks.run(this.host, "preauth-iq", { session: this, stanza: el, ns: payload.getNS() ?? "" });
      const fallback = (v: unknown) => { if (!v) this.send(errorReply(el, "service-unavailable")); };
      if (r && typeof (r as Promise<unknown>).then === "function") {
        // RFC 6120 §8.2.3: a get or set is answered, also when its handler failed (e.g. the store).
        return (r as Promise<unknown>).then(fallback, (err: unknown) => {
          this.ctx.log.error({ err, session: this.id }, "pre-authentication iq failed");
          this.send(errorReply(el, "internal-server-error"));
        });
      }
      return fallback(r);
    }
    return this.close("not-authorized", "authenticate first");
  }

  private startTls(): void {
    if (this.secure || !this.transport.canStartTls || !this.transport.startTls) {
      this.writeRaw(`<failure xmlns='${NS.tls}'/>`);
      return this.close();
    }
    this.writeRaw(`<proceed xmlns='${NS.tls}'/>`);
    // RFC 6120 §5.4.3.3: both sides discard the old stream; the client opens a new one over TLS.
    this.parser = this.newParser();
    this.headerSent = false;
    this.state = "header";
    this.transport.startTls();
  }

  private saslFailure(condition: string, text?: string): void {
    this.sasl = null;
    this.saslFailures++;
    this.send(xml("failure", { xmlns: NS.sasl }, xml(condition), text ? xml("text", { "xml:lang": "en" }, text) : null));
    // RFC 6120 §6.4.5: allow a few retries, then end the stream.
    if (this.saslFailures >= MAX_SASL_FAILURES_PER_STREAM) this.close("policy-violation", "too many failed authentication attempts");
  }

  private handleSasl(el: Element): unknown {
    if (el.name === "abort") {
      this.sasl = null;
      this.send(xml("failure", { xmlns: NS.sasl }, xml("aborted")));
      return undefined;
    }
    let input: Buffer;
    const text = el.getText().trim();
    if (text === "=") input = Buffer.alloc(0);
    else {
      if (!/^[A-Za-z0-9+/]*={0,2}$/.test(text) || text.length % 4 !== 0) return this.saslFailure("incorrect-encoding");
      input = Buffer.from(text, "base64");
    }
    if (el.name === "auth") {
      try {
        this.ctx.login.admitAddress(this.remoteAddress);
      } catch (err) {
        // RFC 6120 §6.5.13: the address is refused for now, whatever the credentials.
        return this.saslFailure("temporary-auth-failure", (err as LoginThrottled).message);
      }
      const mech = el.attrs.mechanism ?? "";
      const offered = offeredMechanisms({ secure: this.secure, allowPlainInsecure: this.ctx.config.auth.allowPlainInsecure, enabled: this.ctx.config.auth.mechanisms });
      if (!offered.includes(mech)) {
        return this.saslFailure(mech === "PLAIN" && !this.secure ? "encryption-required" : "invalid-mechanism");
      }
      const host = this.host;
      this.saslUser = null;
      const auth = this.ctx.config.auth;
      try {
        const lookup = this.ctx.login.saslLookup(this.remoteAddress, host, (user) => { this.saslUser = user; });
        this.sasl = createMechanism(mech, lookup, { secure: this.secure, allowPlainInsecure: auth.allowPlainInsecure, enabled: auth.mechanisms, unknownUserIterations: auth.scramIterations });
      } catch (err) {
        return this.saslFailure(err instanceof SaslError ? err.condition : "invalid-mechanism");
      }
    } else if (el.name !== "response" || !this.sasl) {
      return this.saslFailure("malformed-request");
    }
    const mechanism = this.sasl!;
    return mechanism.step(input).then((step) => {
      if (this.closed || this.sasl !== mechanism) return;
      if (step.kind === "challenge") {
        this.send(xml("challenge", { xmlns: NS.sasl }, step.data.length ? step.data.toString("base64") : "="));
        return;
      }
      let user: string;
      try { user = nodeprep(step.username); } catch { return this.saslFailure("not-authorized"); }
      this.ctx.login.succeeded(this.remoteAddress, `${user}@${this.host}`);
      this.sasl = null;
      this.username = user;
      this.authenticated = true;
      this.send(xml("success", { xmlns: NS.sasl }, step.data?.length ? step.data.toString("base64") : null));
      // RFC 6120 §6.4.6: a new stream over the authenticated connection.
      this.parser = this.newParser();
      this.headerSent = false;
      this.state = "header";
    }, (err) => {
      if (this.closed || this.sasl !== mechanism) return;
      if (!(err instanceof SaslError)) {
        this.ctx.log.error({ err }, "SASL mechanism failed");
        return this.saslFailure("temporary-auth-failure");
      }
      if (err.condition === "not-authorized") {
        const user = this.saslUser;
        this.ctx.login.failed(this.remoteAddress, user === null ? null : `${user}@${this.host}`);
      }
      this.saslFailure(err.condition, err.message || undefined);
    });
  }

  // ---- resource binding (RFC 6120 §7) ----

  private handleBind(el: Element): unknown {
    if (el.name !== "iq" || !el.attrs.id) return this.close("not-authorized", "bind a resource first");
    if (el.attrs.type === "set" && isLegacySession(el)) return this.send(reply(el));
    const bind = el.getChild("bind", NS.bind);
    if (el.attrs.type !== "set" || !bind) {
      if (el.attrs.type === "get" || el.attrs.type === "set") this.send(errorReply(el, "not-authorized", "bind a resource first"));
      return undefined;
    }
    const requested = bind.getChildText("resource");
    let resource: string;
    if (requested) {
      try { resource = resourceprep(requested); } catch { return this.send(errorReply(el, "bad-request", "invalid resource")); }
    } else resource = randomBytes(6).toString("hex");
    let full: Jid;
    try { full = makeJid(this.username!, this.host, resource); } catch { return this.send(errorReply(el, "bad-request", "invalid resource")); }
    if (!claimResource(this.ctx.sessions, this, full, this.ctx.config.c2s.resourceConflict)) {
      return this.send(errorReply(el, "conflict", "the resource is in use"));
    }
    this.jid = full;
    this.ctx.sessions.add(this);
    this.send(reply(el, xml("bind", { xmlns: NS.bind }, xml("jid", null, full.toString()))));
    return this.ctx.hooks.notify(this.host, "resource-bind", { session: this });
  }
}

function isLegacySession(el: Element): boolean {
  return el.getChild("session", NS.session) !== undefined;
}
