// A stream we open to another server (RFC 6120), one per (local domain, remote domain): STARTTLS, then
// SASL EXTERNAL when offered (XEP-0178) or Server Dialback (XEP-0220). Stanzas wait in a bounded queue
// until it is authenticated; dialback verifications for the remote domain ride on it as soon as TLS is up.
import net from "node:net";
import tls from "node:tls";
import { xml, type Element } from "../xml/element.js";
import { NS } from "../xml/ns.js";
import type { StanzaErrorCondition } from "../xml/stanza.js";
import { S2sStream } from "./stream.js";
import { NS_DIALBACK, NS_DIALBACK_FEATURE, dialbackKey } from "./dialback.js";
import { ALPN_XMPP_SERVER, certificateValidFor } from "./certs.js";
import { resolveServer, type ConnectTarget } from "./resolve.js";
import type { S2sContext } from "./context.js";

/** The answer to a dialback verification: the key is valid, invalid, or the stanza error why there is none. */
export type DialbackAnswer = "valid" | "invalid" | StanzaErrorCondition;

type State = "connecting" | "negotiating" | "authenticating" | "ready";

interface PendingVerify { id: string; key: string; resolve: (a: DialbackAnswer) => void; sent: boolean }

export interface OutboundEvents {
  closed(s: OutboundStream): void;
  /** Stanzas that could not be sent: each gets `condition` back (RFC 6120 §10.4.3). */
  bounce(stanzas: Element[], condition: StanzaErrorCondition, text: string): void;
}

export class OutboundStream extends S2sStream {
  state: State = "connecting";
  method: "external" | "dialback" | null = null;
  /** Why the stream ended before it was authenticated (what the manager backs off with). */
  failure: { condition: "remote-server-not-found" | "remote-server-timeout"; text: string } | null = null;
  lastStanza = Date.now();
  private streamId = "";
  private queue: Element[] = [];
  private readonly verifies: PendingVerify[] = [];
  private saslDone = false;
  private triedExternal = false;
  private dialbackOffered = false;
  private peerCertValid = false;
  private readonly connectTimer: NodeJS.Timeout;

  /** Verifications may go once TLS is in place (or not required) and the features came. */
  private canVerify = false;

  private constructor(ctx: S2sContext, readonly local: string, readonly remote: string, private readonly events: OutboundEvents) {
    super(ctx, null);
    this.connectTimer = setTimeout(() => this.fail("remote-server-timeout", `no authenticated connection to ${remote} in time`), ctx.config.s2s.connectTimeoutSeconds * 1000);
    this.connectTimer.unref();
  }

  /** Starts connecting at once; stanzas and verifications may be handed to it right away. */
  static open(ctx: S2sContext, local: string, remote: string, events: OutboundEvents): OutboundStream {
    const s = new OutboundStream(ctx, local, remote, events);
    void s.connect();
    return s;
  }

  get peerName(): string { return this.remote; }
  get ready(): boolean { return this.state === "ready"; }

  protected sendOwnHeader(): void { this.sendHeader({ from: this.local, to: this.remote }); }

  private async connect(): Promise<void> {
    let targets: ConnectTarget[];
    try {
      targets = await resolveServer(this.remote, this.ctx.config.s2s.routes);
    } catch {
      targets = [];
    }
    for (const t of targets) {
      if (this.closed) return;
      const socket = t.directTls
        ? await tryConnectTls({ ...this.ctx.tls.client(this.local, this.remote), host: t.host, port: t.port, ALPNProtocols: [ALPN_XMPP_SERVER] })
        : await tryConnect(t.host, t.port);
      if (this.closed) { socket?.destroy(); return; }
      if (socket) {
        this.attach(socket);
        if (t.directTls) {
          this.secure = this.directTls = true;
          this.peerCertValid = certificateValidFor(socket as tls.TLSSocket, this.remote);
        }
        this.state = "negotiating";
        this.sendOwnHeader();
        return;
      }
    }
    this.fail("remote-server-not-found", `cannot connect to ${this.remote}`);
  }

  protected cleanup(reason: string): void {
    clearTimeout(this.connectTimer);
    if (this.state !== "ready") this.failure ??= { condition: "remote-server-not-found", text: `the connection to ${this.remote} ended: ${reason}` };
    const queued = this.queue;
    this.queue = [];
    if (queued.length > 0) {
      const timeout = reason === "remote-server-timeout";
      this.events.bounce(queued, timeout ? "remote-server-timeout" : "remote-server-not-found", `the connection to ${this.remote} failed`);
    }
    for (const v of this.verifies.splice(0)) v.resolve("remote-server-not-found");
    this.ctx.log.debug({ local: this.local, remote: this.remote, reason }, "s2s outbound stream closed");
    this.events.closed(this);
  }

  /** Closes with the reason the queued stanzas bounce with. */
  private fail(condition: "remote-server-not-found" | "remote-server-timeout", text: string): void {
    if (this.closed) return;
    if (this.state !== "ready") this.failure = { condition, text };
    this.ctx.log.info({ local: this.local, remote: this.remote, condition, text }, "s2s outbound connection failed");
    const queued = this.queue;
    this.queue = [];
    this.events.bounce(queued, condition, text);
    if (this.state === "connecting") {
      this.closed = true;
      this.cleanup(condition);
    } else {
      this.close(condition === "remote-server-timeout" ? "connection-timeout" : undefined, text);
    }
  }

  /** Sends a stanza, or queues it until the stream is authenticated; false when the queue is full. */
  send(stanza: Element): boolean {
    this.lastStanza = Date.now();
    if (this.state === "ready") { this.write(stanza); return true; }
    if (this.queue.length >= this.ctx.config.s2s.maxQueuedStanzas) return false;
    this.queue.push(stanza);
    return true;
  }

  /** XEP-0220 §2.1.3: asks this (authoritative) server whether `key` is its key for stream `id`. */
  verify(id: string, key: string): Promise<DialbackAnswer> {
    return new Promise((resolve) => {
      const v: PendingVerify = { id, key, resolve, sent: false };
      this.verifies.push(v);
      if (this.canVerify) this.sendVerify(v);
    });
  }

  private sendVerify(v: PendingVerify): void {
    v.sent = true;
    this.write(xml("db:verify", { from: this.local, to: this.remote, id: v.id }, v.key));
  }

  protected onStreamStart(attrs: Record<string, string>): void {
    const from = attrs.from;
    if (from !== undefined && from !== this.remote) return this.close("invalid-from", `expected a stream from ${this.remote}`);
    if (attrs.version === undefined || Number(attrs.version.split(".")[0]) < 1) return this.close("unsupported-version", "XMPP 1.0 or later is required");
    this.streamId = attrs.id ?? "";
  }

  protected onElement(el: Element, ns: string | undefined, name: string): unknown {
    if (ns === NS.stream && name === "features") return this.onFeatures(el);
    if (ns === NS.stream && name === "error") {
      const condition = el.children.find((c) => typeof c !== "string" && c.attrs.xmlns === NS.streams) as Element | undefined;
      this.ctx.log.info({ local: this.local, remote: this.remote, error: condition?.name }, "s2s peer sent a stream error");
      return this.fail("remote-server-not-found", `${this.remote} closed the stream: ${condition?.name ?? "error"}`);
    }
    if (ns === NS.tls && name === "proceed") return this.startTls();
    if (ns === NS.tls && name === "failure") return this.fail("remote-server-not-found", "STARTTLS failed");
    if (ns === NS.sasl && name === "success") {
      this.saslDone = true;
      this.method = "external";
      this.restartStream();
      this.sendOwnHeader();
      return undefined;
    }
    if (ns === NS.sasl && name === "failure") {
      if (this.dialbackOffered && !this.ctx.config.s2s.requireValidCertificates) return this.sendDialbackKey();
      return this.fail("remote-server-not-found", `${this.remote} refused SASL EXTERNAL`);
    }
    if (ns === NS_DIALBACK && name === "result") return this.onDialbackResult(el);
    if (ns === NS_DIALBACK && name === "verify") return this.onVerifyAnswer(el);
    // Without XEP-0288 a stream carries stanzas one way only: nothing else is expected here.
    return this.close("unsupported-stanza-type", `<${el.name}/> is not expected on an outgoing stream`);
  }

  private onFeatures(features: Element): void {
    if (this.saslDone) return this.authenticated();
    const starttls = features.getChild("starttls", NS.tls);
    if (!this.secure) {
      if (starttls) { this.write(xml("starttls", { xmlns: NS.tls })); return; }
      if (this.ctx.config.s2s.requireTls) return this.fail("remote-server-not-found", `${this.remote} does not offer STARTTLS`);
    }
    if (this.ctx.config.s2s.requireValidCertificates && !this.peerCertValid) {
      return this.fail("remote-server-not-found", `the certificate of ${this.remote} does not validate`);
    }
    this.canVerify = true;
    for (const v of this.verifies) if (!v.sent) this.sendVerify(v);
    const mechanisms = features.getChild("mechanisms", NS.sasl);
    const external = mechanisms?.getChildren("mechanism").some((m) => m.getText().trim() === "EXTERNAL") ?? false;
    this.dialbackOffered = features.getChild("dialback", NS_DIALBACK_FEATURE) !== undefined;
    this.state = "authenticating";
    if (external && this.secure && !this.triedExternal) {
      this.triedExternal = true;
      // XEP-0178 §3 step 7: the authorization identity is our domain.
      this.write(xml("auth", { xmlns: NS.sasl, mechanism: "EXTERNAL" }, Buffer.from(this.local).toString("base64")));
      return;
    }
    if (this.ctx.config.s2s.requireValidCertificates) return this.fail("remote-server-not-found", `${this.remote} does not offer SASL EXTERNAL`);
    // COMPAT: servers that support dialback without advertising the feature still get the key.
    this.sendDialbackKey();
  }

  private sendDialbackKey(): void {
    this.write(xml("db:result", { from: this.local, to: this.remote }, dialbackKey(this.ctx.secret, this.remote, this.local, this.streamId)));
  }

  private startTls(): void {
    this.restartStream();
    this.upgradeAsClient(this.ctx.tls.client(this.local, this.remote), (socket: tls.TLSSocket) => {
      this.peerCertValid = certificateValidFor(socket, this.remote);
      this.sendOwnHeader();
    });
  }

  private onDialbackResult(el: Element): void {
    if (el.attrs.from !== this.remote || el.attrs.to !== this.local) return;
    const type = el.attrs.type;
    if (type === "valid") {
      this.method = "dialback";
      return this.authenticated();
    }
    // XEP-0220 §2.4: the error tells why; either way the domain pair is not authenticated.
    const condition = el.getChild("error")?.children.find((c) => typeof c !== "string") as Element | undefined;
    this.fail("remote-server-not-found", `${this.remote} refused our dialback key${condition ? ` (${condition.name})` : ""}`);
  }

  private onVerifyAnswer(el: Element): void {
    const i = this.verifies.findIndex((v) => v.sent && v.id === el.attrs.id);
    if (i < 0 || el.attrs.from !== this.remote || el.attrs.to !== this.local) return;
    const [v] = this.verifies.splice(i, 1);
    const type = el.attrs.type;
    if (type === "valid" || type === "invalid") return v!.resolve(type);
    const condition = el.getChild("error")?.children.find((c) => typeof c !== "string") as Element | undefined;
    v!.resolve(condition?.name === "remote-server-timeout" ? "remote-server-timeout" : condition?.name === "item-not-found" ? "item-not-found" : "remote-server-not-found");
  }

  private authenticated(): void {
    clearTimeout(this.connectTimer);
    this.state = "ready";
    this.ctx.log.info({ local: this.local, remote: this.remote, method: this.method }, "s2s outbound authenticated");
    const queued = this.queue;
    this.queue = [];
    for (const stanza of queued) this.write(stanza);
  }
}

function tryConnect(host: string, port: number): Promise<net.Socket | null> {
  return new Promise((resolve) => {
    const s = net.connect(port, host);
    const onError = () => { s.destroy(); resolve(null); };
    s.once("error", onError);
    s.once("connect", () => { s.removeListener("error", onError); s.setNoDelay(true); resolve(s); });
  });
}

/** XEP-0368: TLS from the first byte; resolves once the handshake is done, null when it fails. */
function tryConnectTls(options: tls.ConnectionOptions): Promise<tls.TLSSocket | null> {
  return new Promise((resolve) => {
    const s = tls.connect(options);
    const onError = () => { s.destroy(); resolve(null); };
    s.once("error", onError);
    s.once("secureConnect", () => { s.removeListener("error", onError); s.setNoDelay(true); resolve(s); });
  });
}
