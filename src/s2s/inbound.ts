// A stream another server opened to us (RFC 6120): we are the receiving server. It authenticates domain
// pairs (originating → ours) with SASL EXTERNAL (XEP-0178) or Server Dialback (XEP-0220), answers dialback
// verifications as the authoritative server of our domains, and routes the stanzas of authenticated pairs.
import { randomBytes } from "node:crypto";
import type net from "node:net";
import type tls from "node:tls";
import { xml, type Element } from "../xml/element.js";
import { NS } from "../xml/ns.js";
import { tryParseJid } from "../jid/jid.js";
import { isThenable } from "../events/hooks.js";
import { TokenBucket } from "../sessions/rate.js";
import { S2sStream, STANZAS } from "./stream.js";
import { NS_DIALBACK, NS_DIALBACK_FEATURE, dialbackKey, sameKey } from "./dialback.js";
import { certificateValidFor } from "./certs.js";
import type { S2sContext } from "./context.js";

/** Stanzas of one incoming stream handled at once (of different senders). */
const MAX_IN_FLIGHT = 256;

/** Available presences remembered per stream for the link-drop unavailables; more are not tracked. */
const MAX_TRACKED_PRESENCES = 10_000;

export class InboundStream extends S2sStream {
  /** The domain the peer named in its header (`from`), when it did. */
  peerDomain: string | undefined;
  /** The served domain the peer addressed (`to`). */
  localDomain: string | undefined;
  streamId = "";
  /** Authenticated pairs "originating receiving" (XEP-0220 §2.5: several per stream). */
  readonly pairs = new Set<string>();
  /** How the stream was authenticated first, for logs and tests. */
  method: "external" | "dialback" | null = null;
  private saslDone = false;
  private readonly rate = new TokenBucket(this.ctx.config.s2s.stanzasPerSecond, this.ctx.config.s2s.stanzaBurst);

  /** `directTls`: the socket is a TLS socket from the first byte (XEP-0368), so no STARTTLS is offered. */
  constructor(ctx: S2sContext, socket: net.Socket, directTls: boolean, private readonly onClosed: (s: InboundStream) => void) {
    super(ctx, socket);
    this.secure = this.directTls = directTls;
  }

  get peerName(): string | undefined { return this.peerDomain; }
  get authenticated(): boolean { return this.pairs.size > 0; }

  /** Smaller until the peer has authenticated (s2s.maxStanzaBytesPreAuth). Read by the base constructor, before `pairs` exists. */
  protected override get stanzaLimit(): number {
    const s2s = this.ctx.config.s2s;
    return (this.pairs?.size ?? 0) > 0 ? this.ctx.config.limits.maxStanzaBytes : Math.min(s2s.maxStanzaBytesPreAuth, this.ctx.config.limits.maxStanzaBytes);
  }

  protected override rateWait(ns: string | undefined, name: string): number {
    return this.authenticated && ns === NS.server && STANZAS.has(name) ? this.rate.take() : 0;
  }

  /** Adds an authenticated pair, unless the peer's domain already has s2s.maxStreamsPerDomain other streams. */
  private admit(peer: string, local: string): boolean {
    const max = this.ctx.config.s2s.maxStreamsPerDomain;
    const fromPeer = (s: InboundStream) => [...s.pairs].some((p) => p.startsWith(`${peer} `));
    if (max > 0 && !fromPeer(this) && this.ctx.incomingStreams().filter(fromPeer).length >= max) return false;
    this.pairs.add(`${peer} ${local}`);
    this.parser.setMaxStanzaBytes(this.ctx.config.limits.maxStanzaBytes);
    return true;
  }

  protected sendOwnHeader(): void {
    this.sendHeader({ from: this.localDomain, id: randomBytes(8).toString("hex") });
  }

  protected cleanup(reason: string): void {
    this.ctx.log.debug({ stream: this.id, peer: this.peerDomain, reason }, "s2s inbound stream closed");
    this.onClosed(this);
    // A stream the peer ended cleanly (e.g. closed for idleness) says nothing about its users; one that
    // dropped or failed means no update of their presence can reach us any more: they are shown offline.
    if (!this.endedByPeer && reason !== "system-shutdown") this.presenceGone();
  }

  /** Remote full JID → the local JIDs it told it is available, so they can be told it is gone. */
  private readonly available = new Map<string, Set<string>>();

  private trackPresence(el: Element, from: string, to: string): void {
    const type = el.attrs.type;
    if (type === undefined) {
      let tos = this.available.get(from);
      if (!tos) {
        if (this.available.size >= MAX_TRACKED_PRESENCES) return;
        this.available.set(from, (tos = new Set()));
      }
      tos.add(to);
    } else if (type === "unavailable") {
      const tos = this.available.get(from);
      tos?.delete(to);
      if (tos?.size === 0) this.available.delete(from);
    }
  }

  private presenceGone(): void {
    for (const [from, tos] of this.available) {
      const fromJid = tryParseJid(from);
      for (const to of tos) {
        const toJid = tryParseJid(to);
        if (!fromJid || !toJid) continue;
        const r = this.ctx.router.fromRemote(xml("presence", { from, to, type: "unavailable" }), fromJid, toJid);
        if (isThenable(r)) r.then(undefined, (err: unknown) => this.ctx.log.error({ err, from, to }, "s2s link-drop presence failed"));
      }
    }
    this.available.clear();
  }

  protected onStreamStart(attrs: Record<string, string>): void {
    // RFC 6120 §4.7.2: the initiating server names the domain it wants in `to`.
    const to = attrs.to ? tryParseJid(attrs.to) : null;
    if (!to || to.local || to.resource) return this.close("improper-addressing", "the stream header needs a 'to' domain");
    if (!this.ctx.isServed(to.domain)) return this.close("host-unknown", `${to.domain} is not served here`);
    if (this.saslDone && to.domain !== this.localDomain) return this.close("host-unknown", "the stream was restarted for another domain");
    this.localDomain = to.domain;
    if (attrs.from !== undefined) {
      const from = tryParseJid(attrs.from);
      if (!from || from.local || from.resource) return this.close("invalid-from", "the 'from' of the stream header is not a domain");
      if (this.saslDone && from.domain !== this.peerDomain) return this.close("invalid-from", "the stream was restarted from another domain");
      // RFC 6120 §4.9.3.10: a peer cannot speak for a domain served here.
      if (this.ctx.isServed(from.domain)) return this.close("invalid-from", `${from.domain} is served here`);
      if (!this.ctx.allowed(from.domain)) return this.close("policy-violation", `federation with ${from.domain} is not allowed`);
      this.peerDomain = from.domain;
    }
    const version = attrs.version;
    if (version === undefined || !/^\d+\.\d+$/.test(version) || Number(version.split(".")[0]) < 1) {
      return this.close("unsupported-version", "XMPP 1.0 or later is required");
    }
    this.streamId = randomBytes(12).toString("hex");
    this.sendHeader({ from: this.localDomain, to: this.peerDomain, id: this.streamId });
    this.write(this.features());
  }

  private get tlsRequired(): boolean { return this.ctx.config.s2s.requireTls && !this.secure; }

  /** Whether the peer's certificate validates for the domain it claims (what SASL EXTERNAL rests on). */
  private certificateValid(): boolean {
    return this.secure && this.peerDomain !== undefined && certificateValidFor(this.socket as tls.TLSSocket, this.peerDomain);
  }

  private features(): Element {
    const features = xml("stream:features");
    if (this.saslDone) return features;
    if (!this.secure) features.cnode(xml("starttls", { xmlns: NS.tls }, this.ctx.config.s2s.requireTls ? xml("required") : null));
    if (this.tlsRequired) return features;
    // XEP-0178 §2: EXTERNAL is offered only when the certificate is good for the claimed domain.
    if (this.certificateValid()) features.cnode(xml("mechanisms", { xmlns: NS.sasl }, xml("mechanism", null, "EXTERNAL")));
    // XEP-0220 §2.4.1: dialback with error support.
    if (!this.ctx.config.s2s.requireValidCertificates) features.cnode(xml("dialback", { xmlns: NS_DIALBACK_FEATURE }, xml("errors")));
    return features;
  }

  protected onElement(el: Element, ns: string | undefined, name: string): unknown {
    if (ns === NS.stream && name === "error") {
      // RFC 6120 §4.9.1.3: the peer ends the stream; there is nothing to answer.
      this.ctx.log.info({ peer: this.peerDomain, error: el.children.find((c) => typeof c !== "string")?.toString() }, "s2s peer sent a stream error");
      return this.close();
    }
    if (ns === NS.tls && name === "starttls") return this.startTls();
    if (this.tlsRequired) return this.close("policy-violation", "STARTTLS is required");
    if (ns === NS.sasl) return this.handleSasl(el, name);
    if (ns === NS_DIALBACK && name === "verify") return this.answerVerify(el);
    if (ns === NS_DIALBACK && name === "result") return this.handleResult(el);
    if (STANZAS.has(name) && ns === NS.server) return this.handleStanza(el);
    return this.close("unsupported-stanza-type", `<${el.name}/> is not supported on a server stream`);
  }

  private startTls(): void {
    if (this.secure) return this.close("policy-violation", "TLS is already in place");
    this.writeRaw(`<proceed xmlns='${NS.tls}'/>`);
    this.restartStream();
    this.upgradeAsServer();
  }

  // ---- SASL EXTERNAL (XEP-0178) ----

  private handleSasl(el: Element, name: string): void {
    const fail = (condition: string) => {
      this.write(xml("failure", { xmlns: NS.sasl }, xml(condition)));
      this.close("not-authorized", "SASL EXTERNAL failed");
    };
    if (name !== "auth" || this.saslDone) return fail("malformed-request");
    if (el.attrs.mechanism !== "EXTERNAL") return fail("invalid-mechanism");
    const text = el.getText().trim();
    let authzid = "";
    if (text !== "" && text !== "=") authzid = Buffer.from(text, "base64").toString("utf8");
    // XEP-0178 §3 step 7: an authorization identity, when given, must be the domain of the certificate.
    if (!this.certificateValid() || (authzid !== "" && authzid !== this.peerDomain)) return fail("not-authorized");
    if (!this.admit(this.peerDomain!, this.localDomain!)) return this.close("policy-violation", `too many streams from ${this.peerDomain}`);
    this.write(xml("success", { xmlns: NS.sasl }));
    this.saslDone = true;
    this.method ??= "external";
    this.ctx.log.info({ peer: this.peerDomain, local: this.localDomain, method: "external" }, "s2s inbound authenticated");
    this.restartStream();
  }

  // ---- Server Dialback (XEP-0220) ----

  /** §2.1.3: we are the authoritative server of `to`: is `key` the one we gave out for stream `id`? */
  private answerVerify(el: Element): void {
    const { from, to, id } = el.attrs;
    if (el.attrs.type !== undefined) return; // an answer on an inbound stream is not ours to take
    const answer = xml("db:verify", { from: to, to: from, id });
    if (!from || !to || !id) return this.close("improper-addressing", "db:verify needs from, to and id");
    if (!this.ctx.isServed(to)) {
      answer.attrs.type = "error";
      answer.cnode(xml("error", { type: "cancel" }, xml("item-not-found", { xmlns: NS.stanzas })));
    } else {
      answer.attrs.type = sameKey(el.getText().trim(), dialbackKey(this.ctx.secret, from, to, id)) ? "valid" : "invalid";
    }
    this.write(answer);
  }

  /** §2.1.2: the peer asks to send from `from` to our `to`; its key is checked with `from`'s authoritative server. */
  private handleResult(el: Element): void {
    const { from, to } = el.attrs;
    if (el.attrs.type !== undefined) return undefined;
    if (!from || !to) return this.close("improper-addressing", "db:result needs from and to");
    const error = (condition: string, text?: string) => {
      // §2.4: the error answer, and the stream stays open for other domains.
      this.write(xml("db:result", { from: to, to: from, type: "error" }, xml("error", { type: "cancel" },
        xml(condition, { xmlns: NS.stanzas }), text ? xml("text", { xmlns: NS.stanzas }, text) : null)));
    };
    if (!this.ctx.isServed(to)) return error("item-not-found");
    if (this.ctx.config.s2s.requireValidCertificates) return error("policy-violation", "a valid certificate is required");
    const fromJid = tryParseJid(from);
    if (!fromJid || fromJid.local || fromJid.resource) return error("bad-request");
    if (this.ctx.isServed(fromJid.domain)) return this.close("invalid-from", `${fromJid.domain} is served here`);
    if (!this.ctx.allowed(fromJid.domain)) return error("policy-violation", `federation with ${fromJid.domain} is not allowed`);
    const key = el.getText().trim();
    // Not awaited: the stream goes on reading while the authoritative server answers, or two servers
    // verifying each other's keys at once would each wait for the other's db:verify behind their own.
    void this.ctx.verifyKey(to, fromJid.domain, this.streamId, key).then((answer) => {
      if (this.closed) return;
      if (answer === "valid") {
        if (!this.admit(fromJid.domain, to)) {
          if (!this.authenticated) return this.close("policy-violation", `too many streams from ${fromJid.domain}`);
          return error("policy-violation", `too many streams from ${fromJid.domain}`);
        }
        this.method ??= "dialback";
        this.ctx.log.info({ peer: fromJid.domain, local: to, method: "dialback" }, "s2s inbound authenticated");
        this.write(xml("db:result", { from: to, to: from, type: "valid" }));
      } else if (answer === "invalid") {
        this.write(xml("db:result", { from: to, to: from, type: "invalid" }));
        // RFC 6120 §4.9.3.12 (not-authorized): no stanzas from a peer that failed to authenticate.
        if (!this.authenticated) return this.close("not-authorized", `the dialback key for ${fromJid.domain} is wrong`);
        this.ctx.log.warn({ reason: "dialback key refused", ip: this.remoteAddress, domain: fromJid.domain, local: to }, "s2s peer refused");
      } else {
        error(answer);
      }
    });
  }

  // ---- stanzas ----

  private handleStanza(el: Element): unknown {
    // RFC 6120 §4.9.3.12: nothing but authentication before the peer has authenticated.
    if (!this.authenticated) return this.close("not-authorized", "authenticate first");
    const from = tryParseJid(el.attrs.from);
    const to = tryParseJid(el.attrs.to);
    // RFC 6120 §8.1.1.2, §8.1.2.2: stanzas between servers carry both addresses (§4.9.3.7).
    if (!from || !to) return this.close("improper-addressing", "stanzas between servers need valid 'from' and 'to'");
    if (!this.ctx.isServed(to.domain)) return this.close("host-unknown", `${to.domain} is not served here`);
    // §4.9.3.10: the 'from' domain must be one this stream authenticated, for this 'to'.
    if (!this.pairs.has(`${from.domain} ${to.domain}`)) return this.close("invalid-from", `${from.domain} is not authenticated on this stream`);
    delete el.attrs.xmlns;
    if (el.name === "presence" && from.resource) this.trackPresence(el, el.attrs.from!, el.attrs.to!);
    return this.pipeline(el.attrs.from!, () => this.ctx.router.fromRemote(el, from, to));
  }

  /**
   * One stream carries every user of the peer's domain, so it is not handled one stanza at a time as a
   * client stream is: stanzas of different senders are handled side by side (up to MAX_IN_FLIGHT), those
   * of one sender in order (RFC 6120 §10.1). At the cap, the stream stops reading until one finishes.
   */
  private pipeline(sender: string, handle: () => unknown): Promise<void> | undefined {
    const previous = this.chains.get(sender);
    let done: Promise<unknown>;
    if (previous) {
      done = previous.then(handle);
    } else {
      const r = handle();
      if (!isThenable(r)) return undefined;
      done = Promise.resolve(r);
    }
    this.inFlight++;
    const settled: Promise<void> = done.then(undefined, (err: unknown) => {
      this.ctx.log.error({ err, stream: this.id, sender }, "s2s stanza handler failed");
    }).then(() => {
      this.inFlight--;
      if (this.chains.get(sender) === settled) this.chains.delete(sender);
      const wake = this.slotFreed;
      this.slotFreed = null;
      wake?.();
    });
    this.chains.set(sender, settled);
    if (this.inFlight < MAX_IN_FLIGHT) return undefined;
    return new Promise<void>((resolve) => { this.slotFreed = resolve; });
  }

  /** The last stanza handling of each sender still running. */
  private readonly chains = new Map<string, Promise<void>>();
  private inFlight = 0;
  private slotFreed: (() => void) | null = null;
}
