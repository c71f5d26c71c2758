// One external component's stream (XEP-0114, jabber:component:accept): the component names its domain in
// the header, proves the shared secret with <handshake/> and then sends and receives stanzas of that
// domain. The socket, parser limits, one-element-at-a-time handling and stream errors are the server
// streams' (src/s2s/stream.ts).
import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import type net from "node:net";
import { escapeXML, xml, type Element } from "../xml/element.js";
import { NS } from "../xml/ns.js";
import { tryParseJid } from "../jid/jid.js";
import { TokenBucket } from "../sessions/rate.js";
import { S2sStream, STANZAS, type StreamContext } from "../s2s/stream.js";
import type { Router } from "../router/router.js";

export const NS_COMPONENT = "jabber:component:accept";

/** The handshake element is tiny: nothing bigger is read before the component has authenticated. */
const MAX_BYTES_PRE_AUTH = 4096;

export interface ComponentContext extends StreamContext {
  readonly router: Router;
  /** The shared secret of a configured component domain, undefined for any other name. */
  secretOf(domain: string): string | undefined;
  /** Makes `stream` the one serving `domain`, in place of the stream that served it (which is closed). */
  claim(domain: string, stream: ComponentStream): Promise<void>;
  /** The stream ended: it no longer serves its domain. */
  release(domain: string, stream: ComponentStream): void;
}

/** XEP-0114 §3: the handshake is the lower-case hex SHA-1 of the stream id followed by the secret. */
export function handshakeDigest(streamId: string, secret: string): string {
  return createHash("sha1").update(streamId + secret, "utf8").digest("hex");
}

export class ComponentStream extends S2sStream<ComponentContext> {
  /** The component domain named in the header. */
  domain: string | undefined;
  streamId = "";
  authenticated = false;
  private readonly rate = new TokenBucket(this.ctx.config.components.stanzasPerSecond, this.ctx.config.components.stanzaBurst);
  private readonly authTimer: NodeJS.Timeout;
  /** The id of the ping (XEP-0199) waiting for its answer, and when it was sent. */
  private pingId: string | null = null;
  private pingSentAt = 0;

  constructor(ctx: ComponentContext, socket: net.Socket, private readonly onClosed: (s: ComponentStream) => void) {
    super(ctx, socket);
    this.authTimer = setTimeout(() => this.close("connection-timeout", "the handshake took too long"), ctx.config.limits.authTimeoutSeconds * 1000);
    this.authTimer.unref();
  }

  get peerName(): string | undefined { return this.domain; }

  protected override get contentNamespace(): string { return NS_COMPONENT; }
  protected override get kind(): string { return "component"; }

  /** Read by the base constructor, before `authenticated` is set. */
  protected override get stanzaLimit(): number {
    const max = this.ctx.config.limits.maxStanzaBytes;
    return this.authenticated ? max : Math.min(MAX_BYTES_PRE_AUTH, max);
  }

  protected override rateWait(_ns: string | undefined, name: string): number {
    return this.authenticated && STANZAS.has(name) ? this.rate.take() : 0;
  }

  private sendComponentHeader(attrs: { from?: string; id?: string }): void {
    this.headerSent = true;
    let s = `<?xml version='1.0'?><stream:stream xmlns='${NS_COMPONENT}' xmlns:stream='${NS.stream}'`;
    for (const [k, v] of Object.entries(attrs)) if (v !== undefined) s += ` ${k}='${escapeXML(v)}'`;
    this.writeRaw(`${s}>`);
  }

  protected sendOwnHeader(): void {
    this.sendComponentHeader({ from: this.domain, id: randomBytes(8).toString("hex") });
  }

  protected cleanup(reason: string): void {
    clearTimeout(this.authTimer);
    if (this.authenticated && this.domain) {
      this.ctx.release(this.domain, this);
      this.ctx.log.info({ domain: this.domain, reason }, "component disconnected");
    }
    this.onClosed(this);
  }

  protected onStreamStart(attrs: Record<string, string>): void {
    // XEP-0114 §3: the component names the domain it serves in `to`; no version, no stream features.
    const to = attrs.to ? tryParseJid(attrs.to) : null;
    if (!to || to.local || to.resource) return this.close("improper-addressing", "the stream header needs a 'to' domain");
    if (this.ctx.secretOf(to.domain) === undefined) return this.close("host-unknown", `${to.domain} is not a component domain here`);
    this.domain = to.domain;
    this.streamId = randomBytes(12).toString("hex");
    this.sendComponentHeader({ from: this.domain, id: this.streamId });
  }

  protected onElement(el: Element, ns: string | undefined, name: string): unknown {
    if (ns === NS.stream && name === "error") {
      this.ctx.log.info({ domain: this.domain, error: el.children.find((c) => typeof c !== "string")?.toString() }, "component sent a stream error");
      return this.close();
    }
    if (ns === NS_COMPONENT && name === "handshake") return this.handshake(el);
    // Some components write stanzas with an explicit jabber:client namespace; the stanzas are the same.
    if (STANZAS.has(name) && (ns === NS_COMPONENT || ns === NS.client)) return this.handleStanza(el);
    return this.close("unsupported-stanza-type", `<${el.name}/> is not supported on a component stream`);
  }

  private async handshake(el: Element): Promise<void> {
    if (this.authenticated) return this.close("not-authorized", "the handshake was done already");
    const secret = this.ctx.secretOf(this.domain!)!;
    const expected = Buffer.from(handshakeDigest(this.streamId, secret), "utf8");
    const given = Buffer.from(el.getText().trim().toLowerCase(), "utf8");
    // Constant time: the comparison tells nothing about how much of the digest was right.
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
      return this.close("not-authorized", "the handshake does not match the shared secret");
    }
    // A newcomer that knows the secret replaces the stream serving the domain: after a crash the old one
    // may be a dead TCP connection, and refusing the restarted component would keep the domain down.
    clearTimeout(this.authTimer);
    this.authenticated = true;
    // In a cluster the other nodes learn where the domain is served before the component is told it may send.
    await this.ctx.claim(this.domain!, this);
    if (this.closed) return;
    this.parser.setMaxStanzaBytes(this.ctx.config.limits.maxStanzaBytes);
    this.write(xml("handshake"));
    this.ctx.log.info({ domain: this.domain, ip: this.remoteAddress }, "component connected");
  }

  /**
   * Called by the module's sweep: pings the component after `keepaliveMs` of silence and closes the stream
   * when nothing came `timeoutMs` after the ping (the component's host died without closing TCP).
   */
  checkAlive(now: number, keepaliveMs: number, timeoutMs: number, from: string): void {
    if (!this.authenticated || this.closed) return;
    if (this.pingId !== null && this.lastRead > this.pingSentAt) this.pingId = null;
    if (this.pingId !== null) {
      if (now - this.pingSentAt > timeoutMs) this.close("connection-timeout", "the component did not answer a ping");
      return;
    }
    if (now - this.lastRead < keepaliveMs) return;
    this.pingId = `ping-${randomBytes(6).toString("hex")}`;
    this.pingSentAt = now;
    this.write(xml("iq", { type: "get", id: this.pingId, from, to: this.domain }, xml("ping", { xmlns: NS.ping })));
  }

  private handleStanza(el: Element): unknown {
    if (!this.authenticated) return this.close("not-authorized", "send the handshake first");
    // The answer to the server's ping (any answer, a result or an error, shows the component is alive).
    if (el.name === "iq" && el.attrs.id !== undefined && el.attrs.id.startsWith("ping-") && (el.attrs.type === "result" || el.attrs.type === "error")) {
      if (el.attrs.id === this.pingId) this.pingId = null;
      if (el.attrs.to === undefined || this.ctx.config.hosts.includes(el.attrs.to)) return true;
    }
    const from = tryParseJid(el.attrs.from);
    const to = tryParseJid(el.attrs.to);
    // XEP-0114 §3: a component sends only from its own domain, and addresses every stanza.
    if (!from || from.domain !== this.domain) return this.close("invalid-from", `stanzas from this component must be from ${this.domain}`);
    if (!to) return this.close("improper-addressing", "stanzas from a component need a valid 'to'");
    delete el.attrs.xmlns;
    return this.ctx.router.fromRemote(el, from, to);
  }
}
