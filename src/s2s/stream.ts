// What inbound and outbound server streams share: the socket (and its switch to TLS), the parser with
// the c2s limits, namespaces of the stream header, one element at a time, stream errors. External
// components (XEP-0114, src/component) use the same base with their own content namespace.
import { randomBytes } from "node:crypto";
import type net from "node:net";
import tls from "node:tls";
import { escapeXML, type Element } from "../xml/element.js";
import { NS } from "../xml/ns.js";
import { StreamParser, type XmlError } from "../xml/parser.js";
import { streamError, type StreamErrorCondition } from "../xml/stanza.js";
import { NS_DIALBACK } from "./dialback.js";
import type { S2sContext } from "./context.js";

/** What the base of a stream needs: the config, a logger, and TLS for the streams that negotiate it. */
export type StreamContext = Pick<S2sContext, "config" | "log"> & { readonly tls?: S2sContext["tls"] };

export const STANZAS = new Set(["message", "presence", "iq"]);
const MAX_QUEUED = 64;
/** A peer that does not read what we write is dropped rather than buffered forever. */
const MAX_PENDING_OUTPUT = 8 * 1024 * 1024;

export abstract class S2sStream<C extends StreamContext = S2sContext> {
  readonly id = randomBytes(6).toString("hex");
  closed = false;
  secure = false;
  /** TLS from the first byte (XEP-0368) rather than STARTTLS. */
  directTls = false;
  /** The peer closed the stream with </stream:stream> (rather than the link dropping or an error). */
  protected endedByPeer = false;
  readonly openedAt = Date.now();
  lastRead = Date.now();
  lastWrite = Date.now();
  /** Attributes of the peer's current stream header. */
  protected header: Record<string, string> | null = null;
  protected headerSent = false;
  protected parser: StreamParser;
  private inputQueue: Element[] | null = null;
  private paused = false;

  /** Unset while an outgoing stream is still connecting. */
  protected socket!: net.Socket;

  constructor(protected readonly ctx: C, socket: net.Socket | null) {
    this.parser = this.newParser();
    if (socket) this.attach(socket);
  }

  get remoteAddress(): string { return this.socket?.remoteAddress ?? "unknown"; }

  protected attach(socket: net.Socket): void {
    this.socket = socket;
    this.listen(socket);
  }

  protected abstract onStreamStart(attrs: Record<string, string>): void;
  /** One top-level element with its resolved namespace and local name. Returns a promise while it is handled. */
  protected abstract onElement(el: Element, ns: string | undefined, name: string): unknown;
  protected abstract cleanup(reason: string): void;

  private listen(socket: net.Socket): void {
    socket.on("data", (d: Buffer) => this.onData(d));
    socket.on("error", () => socket.destroy());
    socket.on("close", () => this.onTransportClose());
  }

  private onData(chunk: Buffer): void {
    if (this.closed) return;
    this.lastRead = Date.now();
    this.parser.write(chunk);
  }

  private onTransportClose(): void {
    if (this.closed) return;
    this.closed = true;
    this.cleanup("disconnected");
  }

  protected newParser(): StreamParser {
    return new StreamParser({
      onStreamStart: (name, attrs) => this.checkStreamStart(name, attrs),
      onStanza: (el) => this.enqueue(el),
      onStreamEnd: () => { this.endedByPeer = true; this.close(); },
      onError: (err: XmlError) => this.close(err.condition === "bad-format" ? "not-well-formed" : err.condition, err.message),
    }, { limits: { maxStanzaBytes: this.stanzaLimit } });
  }

  /** What log lines call the stream. */
  protected get kind(): string { return "s2s"; }

  /** The content namespace the peer's header must declare (RFC 6120 §4.8.2). */
  protected get contentNamespace(): string { return NS.server; }

  /** The parser's stanza size limit for the stream's current state. */
  protected get stanzaLimit(): number { return this.ctx.config.limits.maxStanzaBytes; }

  /** How long to hold `name` back for the peer's rate limit (0: handle it now). */
  protected rateWait(_ns: string | undefined, _name: string): number { return 0; }

  /** RFC 6120 §4.3.3: after TLS or SASL both sides start a new stream; the old parser state is discarded. */
  protected restartStream(): void {
    this.parser = this.newParser();
    this.header = null;
    this.headerSent = false;
  }

  private checkStreamStart(name: string, attrs: Record<string, string>): void {
    // RFC 6120 §4.8.1, §4.8.2: the stream namespace, and jabber:server as the content namespace.
    if (name !== "stream:stream" || attrs["xmlns:stream"] !== NS.stream) return this.close("invalid-namespace", "not an XMPP stream");
    if (attrs.xmlns !== this.contentNamespace) return this.close("invalid-namespace", `this stream's content namespace is ${this.contentNamespace}`);
    this.header = attrs;
    this.onStreamStart(attrs);
  }

  /** Elements are handled one at a time: while one waits for the router, the rest queue in order. */
  private enqueue(el: Element): void {
    if (this.closed) return;
    if (this.inputQueue !== null) {
      this.inputQueue.push(el);
      if (this.inputQueue.length >= MAX_QUEUED && !this.paused) { this.paused = true; this.socket.pause(); }
      return;
    }
    this.process(el);
  }

  private process(el: Element): void {
    const [ns, name] = this.resolveName(el);
    const wait = this.rateWait(ns, name);
    if (wait > 0) {
      // Over its rate: the peer is read more slowly (the queue fills and pauses the socket), nothing is dropped.
      this.inputQueue = [];
      setTimeout(() => {
        this.inputQueue!.unshift(el);
        this.drain();
      }, wait);
      return;
    }
    let r: unknown;
    try {
      r = this.onElement(el, ns, name);
    } catch (err) {
      this.ctx.log.error({ err, stream: this.id }, `${this.kind} element handler failed`);
      return this.close("internal-server-error");
    }
    if (r && typeof (r as Promise<unknown>).then === "function") {
      this.inputQueue = [];
      (r as Promise<unknown>).then(() => this.drain(), (err) => {
        this.ctx.log.error({ err, stream: this.id }, `${this.kind} element handler failed`);
        this.drain();
      });
    }
  }

  private drain(): void {
    const q = this.inputQueue!;
    this.inputQueue = null;
    while (q.length > 0 && !this.closed) {
      this.process(q.shift()!);
      if (this.inputQueue !== null) { (this.inputQueue as Element[]).push(...q); return; }
    }
    if (this.paused && !this.closed) { this.paused = false; this.socket.resume(); }
  }

  /** The namespace and local name of a top-level element: prefixes resolve against the element, then the header. */
  private resolveName(el: Element): [string | undefined, string] {
    const colon = el.name.indexOf(":");
    if (colon < 0) return [el.attrs.xmlns ?? this.header?.xmlns, el.name];
    const prefix = el.name.slice(0, colon);
    const ns = el.attrs[`xmlns:${prefix}`] ?? this.header?.[`xmlns:${prefix}`] ?? (prefix === "stream" ? NS.stream : undefined);
    return [ns, el.name.slice(colon + 1)];
  }

  // ---- output ----

  protected writeRaw(s: string): void {
    if (this.closed || !this.socket || this.socket.destroyed) return;
    this.lastWrite = Date.now();
    this.socket.write(s);
    if (this.socket.writableLength > MAX_PENDING_OUTPUT) {
      this.closed = true;
      this.socket.destroy();
      this.cleanup("slow reader");
    }
  }

  /** Writes a stanza or a protocol element; a stanza from a client stream loses its jabber:client namespace. */
  write(el: Element): void {
    const xmlns = el.attrs.xmlns;
    if (xmlns === NS.client || xmlns === NS.server) {
      delete el.attrs.xmlns;
      this.writeRaw(el.toString());
      el.attrs.xmlns = xmlns;
    } else {
      this.writeRaw(el.toString());
    }
  }

  /** RFC 6120 §4.6.1: whitespace keeps a silent connection from being closed by middleboxes. */
  keepalive(): void { this.writeRaw(" "); }

  protected sendHeader(attrs: { from?: string; to?: string; id?: string }): void {
    this.headerSent = true;
    let s = `<?xml version='1.0'?><stream:stream xmlns='${NS.server}' xmlns:stream='${NS.stream}' xmlns:db='${NS_DIALBACK}' version='1.0'`;
    for (const [k, v] of Object.entries(attrs)) if (v !== undefined) s += ` ${k}='${escapeXML(v)}'`;
    this.writeRaw(`${s}>`);
  }

  close(error?: StreamErrorCondition, text?: string): void {
    if (this.closed) return;
    if (!this.socket) {
      this.closed = true;
      return this.cleanup(error ?? "closed");
    }
    if (error) {
      if (!this.headerSent) this.sendOwnHeader();
      this.writeRaw(streamError(error, text).toString());
      // The one line per refused or misbehaving peer: why, from where, claiming which domain.
      const fields = { stream: this.id, reason: error, text, ip: this.remoteAddress, domain: this.peerName };
      if (error === "system-shutdown") this.ctx.log.debug(fields, `${this.kind} stream closed for shutdown`);
      else this.ctx.log.warn(fields, `${this.kind} stream closed with an error`);
    }
    this.writeRaw("</stream:stream>");
    this.closed = true;
    const s = this.socket;
    s.end();
    setTimeout(() => s.destroy(), 2000).unref();
    this.cleanup(error ?? "closed");
  }

  /** The header to send before a stream error when none was sent yet (RFC 6120 §4.9.1.1). */
  protected abstract sendOwnHeader(): void;
  /** For log lines: the domain at the other end, as far as known. */
  abstract get peerName(): string | undefined;

  private detach(): net.Socket {
    const raw = this.socket;
    raw.removeAllListeners("data");
    raw.removeAllListeners("close");
    raw.removeAllListeners("error");
    return raw;
  }

  private secured(secure: tls.TLSSocket): void {
    this.socket = secure;
    this.secure = true;
    this.listen(secure);
  }

  /** The server side of STARTTLS (RFC 6120 §5.4.3.3); the caller restarts the stream. */
  protected upgradeAsServer(): void {
    const raw = this.detach();
    raw.on("error", () => raw.destroy());
    this.ctx.tls!.accept(raw, (secure) => {
      if (this.closed) return secure?.destroy();
      if (!secure) {
        this.closed = true;
        raw.destroy();
        return this.cleanup("TLS negotiation failed");
      }
      this.secured(secure);
    });
  }

  /** The client side of STARTTLS; `onSecure` runs once the handshake is done. */
  protected upgradeAsClient(options: tls.ConnectionOptions, onSecure: (s: tls.TLSSocket) => void): void {
    const secure = tls.connect({ ...options, socket: this.detach() });
    this.secured(secure);
    secure.once("secureConnect", () => onSecure(secure));
  }
}
