// One client stream (RFC 6120): header, STARTTLS, SASL, restart, bind, then stanzas to the router.
// The same state machine serves TCP, direct TLS and WebSocket (RFC 7395); only framing differs.
import { isThenable } from "../events/hooks.js";
import { Element, textOf, xml } from "../xml/element.js";
import { NS } from "../xml/ns.js";
import { StreamParser, parseFramedElement, type ParserHandler, type XmlError } from "../xml/parser.js";
import { errorReply, iqPayload, reply, streamError, type StreamErrorCondition } from "../xml/stanza.js";
import { jid as makeJid, resourceprep, nodeprep, type Jid } from "../jid/jid.js";
import { SaslAttempt, streamMechanisms } from "./sasl/attempt.js";
import { channelBindingFeature, tlsChannelBinding } from "./sasl/channel-binding.js";
import type { ChannelBinding } from "./sasl/index.js";
import type { TLSSocket } from "node:tls";
import { TokenBucket } from "../sessions/rate.js";
import { Backpressure } from "../sessions/backpressure.js";
import { SessionState, type DeliveryMeta, type MessageTurn, type Session, type Transport } from "../sessions/session.js";
import { claimResource } from "../sessions/bind.js";
import type { C2sContext } from "./context.js";
import { randomString } from "./random.js";
import { contain } from "../log.js";
import { archivedBeforeDelivery } from "../im/archived.js";
import { NS_SM, MAX_UNACKED, SM_STORE, SmJournal, StreamManagement, ackable, claimRecord, handledCountTooHigh, materialize, numberedRows, parseH, queueAfter, resumeRegistry, seqsAbove, smFailed, snapshotText, type QueuedStanza } from "./sm.js";
import { NS_CSI, MAX_HELD, InactiveBuffer, isUrgent } from "./csi.js";
import { NS_SASL2, Sasl2Negotiation, bind2Features, sasl2Feature, type Sasl2Stream } from "./sasl2.js";

/** What a session needs from the connection under it. */
export interface StreamTransport {
  readonly kind: Exclude<Transport, "mobile">;
  /** RFC 7395 framing: every element is one WebSocket message, `<open/>`/`<close/>` instead of the stream tags. */
  readonly framed: boolean;
  readonly remoteAddress: string;
  readonly secure: boolean;
  /** The TLS connection this process terminates (direct TLS, STARTTLS), for channel binding; else null. */
  readonly tlsSocket?: TLSSocket | null;
  /** TCP only: switches the connection to TLS (RFC 6120 §5) after `<proceed/>` was written. */
  readonly canStartTls: boolean;
  startTls?(): void;
  /** `flushed` is called without an error once the data has left the process (handed to the kernel). */
  write(data: string, flushed?: (err?: Error | null) => void): void;
  /** Output written but not yet taken by the peer (what c2s.maxOutboundBytes bounds). */
  readonly unsent: number;
  /** Closes after pending writes are flushed. */
  end(): void;
  pause(): void;
  resume(): void;
}

type State = "header" | "open" | "closed";
const STANZAS = new Set(["message", "presence", "iq"]);
/** Messages of one session handled at once while their timeline writes commit (C2sSession.takeTurn). */
const MAX_IN_FLIGHT = 16;

/**
 * A message the session is handling. When its handler takes it over (takeTurn), the handler ends it; the
 * session may meanwhile go on with its next messages (released), up to MAX_IN_FLIGHT of them.
 */
class Turn implements MessageTurn {
  released = false;
  taken = false;
  ended = false;
  /** The session's previous taken turn, until this one has asked to run after it. */
  earlier: Turn | null = null;
  /** What the next turn runs once this one has ended. */
  follower: { run(): void } | null = null;

  constructor(readonly el: Element, private readonly session: C2sSession) {}

  afterEarlier(next: { run(): void }): void {
    const earlier = this.earlier;
    this.earlier = null;
    if (earlier === null || earlier.ended) next.run();
    else earlier.follower = next;
  }

  end(): void {
    if (!this.ended) this.session.turnEnded(this);
  }
}
const MAX_SASL_FAILURES_PER_STREAM = 3;

/** A serialised `<stream:features/>` without the modules' features, which go between head and tail. */
interface FeatureFrame { head: string; tail: string }
/** Per listener context: the frames by what they depend on (see sendFeatures). A handful in practice. */
const featureFrames = new WeakMap<C2sContext, Map<string, FeatureFrame>>();
const MAX_FEATURE_FRAMES = 64;

export class C2sSession extends SessionState implements Session, Sasl2Stream, ParserHandler {
  host: string;

  readonly openedAt = Date.now();
  lastActivity = this.openedAt;
  pingSentAt = 0;

  private state: State = "header";
  private headerSent = false;
  private authenticated = false;
  private parser: StreamParser;
  private sasl: SaslAttempt | null = null;
  private saslFailures = 0;
  private queue: Element[] | null = null;
  private busy = false;
  /** The message being handled, while its handler may still take it over (takeTurn()). */
  private turn: Turn | null = null;
  /** Messages released by takeTurn() whose handling has not finished. */
  private inflight = 0;
  /** The last message taken over by its handler, until it ends: what the next one delivers after. */
  private lastTurn: Turn | null = null;
  /** The queue's head waits for the messages in flight to finish (it is not a message). */
  private drainWait = false;
  private readonly backpressure = new Backpressure(() => this.transport);
  private readonly rate: TokenBucket;
  private throttleTimer: NodeJS.Timeout | null = null;
  /** Seqs of timeline rows sent to this session whose bytes are still queued in this process. */
  private unflushed: Set<number> | null = null;
  /** XEP-0198, once the client enabled it; null keeps the output path free of SM work. */
  private sm: StreamManagement | null = null;
  /** No connection under a resumable session (XEP-0198 §5): output waits in the SM queue. */
  private detached = false;
  /** The queue is being resent after a resumption: newer output waits behind it. */
  private resending = false;
  /** Closes still to come from connections this session was taken away from by a resumption. */
  private staleCloses = 0;
  /** This stream resumed that session: everything it receives belongs to it. */
  private resumedInto: C2sSession | null = null;
  /** XEP-0352: held output while the client is inactive; null while it is active. */
  private inactive: InactiveBuffer | null = null;
  /** XEP-0388, from the client's first `<authenticate/>` until it authenticated. */
  private sasl2: Sasl2Negotiation | null = null;

  constructor(private readonly ctx: C2sContext, private transport: StreamTransport) {
    super();
    this.host = ctx.config.hosts[0];
    this.rate = new TokenBucket(ctx.config.limits.stanzasPerSecond, ctx.config.limits.stanzaBurst);
    this.parser = this.newParser();
    ctx.tracker.add(this);
  }

  get protocol(): Transport { return this.transport.kind; }
  get remoteAddress(): string { return this.transport.remoteAddress; }
  get secure(): boolean { return this.transport.secure; }
  /** Output queued for a peer that has not read it yet. */
  get unsentBytes(): number { return this.transport.unsent; }
  get isAuthenticated(): boolean { return this.authenticated; }

  /** SCRAM-*-PLUS (RFC 5802 §6): the TLS channel under this stream, when it can bind. */
  get channel(): ChannelBinding | null {
    const socket = this.ctx.config.auth.channelBinding ? this.transport.tlsSocket : null;
    return socket ? tlsChannelBinding(socket) : null;
  }

  // The session is its parser's handler (the four methods below), rather than an object of four closures
  // that every connection would keep for as long as it lives (idle memory per connection).
  private newParser(): StreamParser {
    return new StreamParser(this, { framed: this.transport.framed, limits: { maxStanzaBytes: this.ctx.config.limits.maxStanzaBytes } });
  }

  /** ParserHandler: a complete stanza. */
  onStanza(el: Element): void {
    this.onElement(el);
  }

  /** ParserHandler: the peer closed its stream (a resumed session's old stream hands it to the new one). */
  onStreamEnd(): void {
    (this.resumedInto ?? this).streamEnded();
  }

  /** ParserHandler: input that is not XMPP; the parser ignores the rest. */
  onError(err: XmlError): void {
    (this.resumedInto ?? this).close(err.condition, err.message);
  }

  /** Raw input from the transport (TCP bytes, or one WebSocket message). */
  onData(chunk: Buffer | string): void {
    if (this.closed) return;
    const owner = this.resumedInto ?? this;
    owner.lastActivity = Date.now();
    owner.pingSentAt = 0;
    this.parser.write(chunk);
  }

  /** The transport closed under us (clean or abrupt), or after we closed it. */
  onTransportClose(reason = "disconnected"): void {
    if (this.resumedInto) {
      this.closed = true;
      return this.resumedInto.onTransportClose(reason);
    }
    if (this.staleCloses > 0) { this.staleCloses--; return; }
    this.offerUnflushedAgain();
    if (this.closed) return;
    // XEP-0198 §5: a resumable session outlives its connection for `max` seconds.
    if (this.sm?.id && this.jid) return this.detach();
    this.closed = true;
    this.cleanup(reason);
  }

  /** Whether the session waits for its client to resume it (no connection under it). */
  get hibernating(): boolean { return this.detached; }

  /**
   * The connection is taken for dead (no answer to a ping): a resumable session waits for its client
   * (XEP-0198 §5) like one whose connection closed; any other session ends.
   */
  connectionLost(text: string): void {
    if (this.closed) return;
    if (!this.sm?.id || !this.jid || this.detached) return this.close("connection-timeout", text);
    this.endStream("connection-timeout", text);
    this.staleCloses++;
    this.detach();
  }

  private detach(): void {
    const sm = this.sm!;
    this.detached = true;
    this.resending = false;
    sm.requested = false;
    sm.journal?.dropHeld();
    sm.journal?.touch();
    sm.hibernateTimer = setTimeout(() => {
      sm.hibernateTimer = null;
      this.close("connection-timeout", "not resumed in time");
    }, sm.max * 1000);
    sm.hibernateTimer.unref();
  }

  // ---- output ----

  send(stanza: Element, meta?: DeliveryMeta): void {
    if (this.closed) return;
    const held = this.inactive;
    if (held !== null) {
      if (held.hold(stanza)) {
        if (held.size >= MAX_HELD) this.flushInactive();
        return;
      }
      if (isUrgent(stanza)) this.flushInactive();
    }
    this.deliver(stanza, meta);
  }

  private deliver(stanza: Element, meta?: DeliveryMeta): void {
    if (this.ctx.logStanzas) this.ctx.log.debug({ session: this.id, out: stanza.toString() }, "stanza out");
    this.ctx.router.traffic.sent(stanza.name);
    const sm = this.sm;
    if (sm !== null && STANZAS.has(stanza.name)) return this.deliverManaged(sm, stanza, meta);
    const flushed = meta && this.jid ? this.trackFlush(meta.seq) : undefined;
    this.transport.write(this.serialize(stanza), flushed);
  }

  private serialize(stanza: Element): string {
    if (this.transport.framed && STANZAS.has(stanza.name) && stanza.attrs.xmlns === undefined) {
      // RFC 7395 §3.3: each WebSocket message is a standalone document, so stanzas carry their namespace.
      stanza.attrs.xmlns = NS.client;
      const s = stanza.toString();
      delete stanza.attrs.xmlns;
      return s;
    }
    return textOf(stanza);
  }

  /** XEP-0198 §4: every stanza is counted and kept until acknowledged; a message by its timeline row. */
  private deliverManaged(sm: StreamManagement, stanza: Element, meta: DeliveryMeta | undefined): void {
    const text = this.detached || this.resending ? null : this.serialize(stanza);
    sm.queue.push(meta ?? text ?? this.serialize(stanza));
    if (sm.queue.length > MAX_UNACKED) {
      this.close("policy-violation", "too many unacknowledged stanzas");
      return;
    }
    const journal = sm.journal;
    if (text === null) {
      if (meta) journal?.touch();
      return;
    }
    // Durable resumption: a row goes out once a record lists it; what follows waits behind it.
    if (journal !== null && (meta !== undefined || journal.holding)) return journal.hold(text);
    this.transport.write(text);
    this.requestAck(sm);
  }

  private requestAck(sm: StreamManagement): void {
    if (sm.requested || this.detached || this.resending) return;
    sm.requested = true;
    this.transport.write(`<r xmlns='${NS_SM}'/>`);
  }

  private flushInactive(): void {
    for (const el of this.inactive!.take()) this.deliver(el);
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

  close(error?: StreamErrorCondition, text?: string, appCondition?: Element): void {
    if (this.closed) return;
    this.endStream(error, text, appCondition);
    this.closed = true;
    this.cleanup(error ?? "closed");
  }

  /** Writes the stream error (if any) and the end of the stream, and closes the connection. */
  private endStream(error?: StreamErrorCondition, text?: string, appCondition?: Element): void {
    if (error) {
      if (!this.headerSent) this.sendHeader(null);
      const err = streamError(error, text);
      if (appCondition) err.cnode(appCondition);
      if (this.transport.framed) err.attrs["xmlns:stream"] = NS.stream;
      this.writeRaw(err.toString());
      // Once per stream, with its peer; a shutdown closes every stream and is logged once by the server.
      if (error !== "system-shutdown") this.ctx.log.info({ session: this.id, peer: this.remoteAddress, jid: this.jid?.toString(), error, text }, "stream error");
    }
    this.writeRaw(this.transport.framed ? `<close xmlns='${NS.framing}'/>` : "</stream:stream>");
    this.transport.end();
  }

  private cleanup(reason: string): void {
    this.state = "closed";
    if (this.throttleTimer) clearTimeout(this.throttleTimer);
    if (this.sm !== null) this.endManagement();
    this.ctx.tracker.delete(this);
    if (this.jid && this.ctx.sessions.remove(this)) {
      void this.ctx.hooks.notify(this.host, "resource-unbind", { session: this, reason });
    }
  }

  /**
   * The session ends with stanzas the client did not acknowledge: the messages among them become
   * offline messages again (XEP-0160, delivered with a XEP-0203 delay at the next login), never dropped.
   */
  private endManagement(): void {
    const sm = this.sm!;
    if (sm.hibernateTimer) { clearTimeout(sm.hibernateTimer); sm.hibernateTimer = null; }
    this.detached = false;
    const owner = this.jid?.bareString();
    if (sm.id && owner) resumeRegistry<C2sSession>(this.ctx).ended(sm.id, owner, sm.inbound);
    const journal = sm.journal;
    sm.journal = null;
    if (journal !== null && owner) {
      const rows = numberedRows(sm), sent = sm.sent;
      sm.queue = [];
      // Rows another node resumed from the record are its to deliver; the rest go offline.
      const settled = journal.end(sm.inbound).then((above) => {
        const seqs = seqsAbove(rows, above, sent);
        return seqs.length ? this.ctx.store.timeline.markPending(owner, seqs) : undefined;
      });
      settled.catch((err: unknown) => {
        this.ctx.log.error({ err, session: this.id, owner }, "could not keep unacknowledged messages for the next login");
      });
      return;
    }
    const seqs = sm.rows();
    sm.queue = [];
    if (!seqs.length || !owner) return;
    this.ctx.store.timeline.markPending(owner, seqs).catch((err: unknown) => {
      this.ctx.log.error({ err, session: this.id, owner }, "could not keep unacknowledged messages for the next login");
    });
  }

  // ---- stream header ----

  private sendHeader(id: string | null): void {
    this.headerSent = true;
    const sid = id ?? randomString(8, "hex");
    if (this.transport.framed) {
      this.writeRaw(`<open xmlns='${NS.framing}' from='${this.host}' id='${sid}' version='1.0' xml:lang='en'/>`);
    } else {
      this.writeRaw(`<?xml version='1.0'?><stream:stream xmlns='${NS.client}' xmlns:stream='${NS.stream}' from='${this.host}' id='${sid}' version='1.0' xml:lang='en'>`);
    }
  }

  /** ParserHandler: the stream header. */
  onStreamStart(name: string, attrs: Record<string, string>): void {
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
      const hosts = this.ctx.config.hosts;
      const served = hosts.indexOf(host);
      if (served === -1) {
        return this.close("host-unknown", `${to} is not served here`);
      }
      if (this.authenticated && host !== this.host) return this.close("host-unknown", "the stream was restarted for another host");
      // The configured string, not the one from the header: a slice of the header would keep all of it
      // alive with the session (and with the JIDs made from the host).
      this.host = hosts[served];
    }
    const version = attrs.version;
    if (version === undefined || !/^\d+\.\d+$/.test(version) || Number(version.split(".")[0]) < 1) {
      return this.close("unsupported-version", "XMPP 1.0 or later is required");
    }
    this.state = "open";
    this.sendHeader(null);
    this.sendFeatures();
  }

  /**
   * The stream features (RFC 6120 §4.3.2). What the core offers depends on little (the transport, TLS, the
   * channel binding types, the Bind2 features modules fold in) and is serialised once per combination; only
   * the modules' `stream-features` folds run for each stream, since they may depend on the session (the
   * registration feature depends on the client's address). Built and serialised for every login, the same
   * elements took about 5 % of a login's CPU, and the optimising compiler compiled the builders two or
   * three times over in the first logins after a start.
   */
  sendFeatures(): void {
    if (this.closed) return;
    const cfg = this.ctx.config;
    const authenticated = this.authenticated;
    const tlsPending = !authenticated && !this.secure && this.transport.canStartTls;
    const offersAuth = !authenticated && !(tlsPending && cfg.c2s.requireTls);
    const channel = offersAuth ? this.channel : null;
    const bind2 = offersAuth && cfg.auth.sasl2 ? bind2Features(this.ctx, this) : null;
    const key = `${this.host} ${this.transport.framed ? 1 : 0}${authenticated ? 1 : 0}${tlsPending ? 1 : 0}${this.secure ? 1 : 0} ${channel?.types.join(",") ?? "-"} ${bind2?.join(",") ?? "-"}`;
    let frames = featureFrames.get(this.ctx);
    if (frames === undefined) featureFrames.set(this.ctx, frames = new Map());
    let frame = frames.get(key);
    if (frame === undefined) {
      frame = this.featureFrame(tlsPending, offersAuth, channel, bind2);
      if (frames.size < MAX_FEATURE_FRAMES) frames.set(key, frame);
    }
    let text = frame.head;
    if (authenticated || offersAuth) {
      for (const f of this.ctx.hooks.runFold(this.host, "stream-features", [], { session: this, authenticated })) text += f.toString();
    }
    text += frame.tail;
    if (this.ctx.logStanzas) this.ctx.log.debug({ session: this.id, out: text }, "stanza out");
    this.ctx.router.traffic.sent("stream:features");
    this.transport.write(text);
  }

  /** The features of the core, serialised around the place of the modules' ones: head, then the folds, then tail. */
  private featureFrame(tlsPending: boolean, offersAuth: boolean, channel: ChannelBinding | null, bind2: string[] | null): FeatureFrame {
    const features = xml("stream:features", this.transport.framed ? { "xmlns:stream": NS.stream } : null);
    const cfg = this.ctx.config;
    if (!this.authenticated) {
      if (tlsPending) {
        features.cnode(xml("starttls", { xmlns: NS.tls }, cfg.c2s.requireTls ? xml("required") : null));
      }
      if (offersAuth) {
        const mechs = streamMechanisms(cfg.auth, this);
        features.cnode(xml("mechanisms", { xmlns: NS.sasl }, ...mechs.map((m) => xml("mechanism", null, m))));
        if (channel) features.cnode(channelBindingFeature(channel));
        if (bind2 !== null) features.cnode(sasl2Feature(this.ctx, this, bind2));
      }
    } else {
      features.cnode(xml("bind", { xmlns: NS.bind }));
      // RFC 6121 Appendix E (COMPAT: older clients still send it): advertised as optional.
      features.cnode(xml("session", { xmlns: NS.session }, xml("optional")));
      features.cnode(xml("sm", { xmlns: NS_SM }));
      features.cnode(xml("csi", { xmlns: NS_CSI }));
    }
    // XEP-0478: the limits this stream is held to (idle: the server pings after that long, then closes).
    const limits = xml("limits", { xmlns: "urn:xmpp:stream-limits:0" }, xml("max-bytes", null, String(cfg.limits.maxStanzaBytes)),
      this.authenticated ? xml("idle-seconds", null, String(cfg.limits.idleTimeoutSeconds)) : null);
    features.cnode(limits);
    // The limits are the last child, so the text ends with them and the end tag.
    const tail = `${limits.toString()}</stream:features>`;
    return { head: features.toString().slice(0, -tail.length), tail };
  }

  private streamEnded(): void {
    // RFC 6120 §4.4: answer the closing tag with ours, then close the connection.
    this.close();
  }

  // ---- elements: one at a time; the socket is paused while a handler awaits ----

  private onElement(el: Element): void {
    if (this.resumedInto) return this.resumedInto.onElement(el);
    if (this.closed) return;
    if (this.queue !== null) {
      this.queue.push(el);
      this.backpressure.waiting(this.queue.length);
      return;
    }
    if (this.inflight !== 0 && !this.mayOvertake(el)) return this.waitForInflight([el]);
    this.process(el);
  }

  /** Holds `queue` until the messages in flight are all done (the last one's settled() resumes). */
  private waitForInflight(queue: Element[]): void {
    this.queue = queue;
    this.busy = true;
    this.drainWait = true;
  }

  /**
   * Whether `el` may be handled while earlier messages are still in flight (takeTurn()): only a message that
   * is archived before delivery, so it reaches its recipient after them; anything else (a chat state, an
   * iq, presence, an SM request) waits until they are all done, so it sees, and is answered and delivered
   * after, everything sent before it.
   */
  private mayOvertake(el: Element): boolean {
    return el.name === "message" && this.jid !== null && (el.attrs.xmlns === undefined || el.attrs.xmlns === NS.client) &&
      archivedBeforeDelivery(el);
  }

  private process(el: Element): void {
    if (this.resumedInto) return this.resumedInto.onElement(el);
    if (this.jid && STANZAS.has(el.name)) {
      const wait = this.rate.take();
      if (wait > 0) return this.deferForRate(el, wait);
    }
    const turn = el.name === "message" && this.jid !== null ? new Turn(el, this) : null;
    this.turn = turn;
    const r = this.handleElement(el);
    if (turn !== null && turn.taken) {
      // Its handler ends it (Turn.end), perhaps already has; until then, unless released, the session waits.
      if (!turn.released && !turn.ended) {
        this.queue = [];
        this.busy = true;
      }
      // A promise the handler answered besides is not waited for: only a failure is worth a line.
      if (isThenable(r)) r.then(undefined, (err: unknown) => this.ctx.log.error({ err, session: this.id }, "element handler failed"));
    } else if (isThenable(r)) {
      this.queue = [];
      this.busy = true;
      // A handler may still take the turn over once it goes on (after a lookup): then it ends the turn.
      r.then(() => { if (turn === null || !turn.taken) this.settled(turn); }, (err) => {
        this.ctx.log.error({ err, session: this.id }, "element handler failed");
        if (turn === null || !turn.taken) this.settled(turn);
      });
    } else {
      this.turn = null;
      if (turn !== null) turn.ended = true;
    }
  }

  /** Turn.end(): the handler that took `turn` over is done with it. */
  turnEnded(turn: Turn): void {
    this.settled(turn);
  }

  /** The handling of an element that returned a promise, or of a taken turn, is done. */
  private settled(turn: Turn | null): void {
    if (turn === null) return this.afterAsync();
    if (turn.ended) return;
    turn.ended = true;
    turn.earlier = null;
    if (this.lastTurn === turn) this.lastTurn = null;
    if (turn.released) {
      this.inflight--;
      if (this.inflight === 0 && this.drainWait) {
        this.drainWait = false;
        this.afterAsync();
      }
    } else {
      if (this.turn === turn) this.turn = null;
      // A handler that took its turn and ended it before it returned: the session never waited.
      if (this.busy) this.afterAsync();
    }
    // The next message's delivery, waiting for this one's end (Turn.afterEarlier).
    const follower = turn.follower;
    if (follower !== null) {
      turn.follower = null;
      follower.run();
    }
  }

  /**
   * Called by the message handler once the timeline write of `stanza` (the message being handled) is queued,
   * so that its place among this session's messages is fixed: the session goes on with its next messages
   * (up to MAX_IN_FLIGHT) while this one is committed, and a client with several messages in flight gets
   * them into one commit instead of one commit each. The handler delivers after the earlier messages have
   * ended (afterEarlier), so that deliveries keep the order the client sent in, and ends the turn itself.
   * undefined when `stanza` is not this session's current message.
   */
  takeTurn(stanza: Element): MessageTurn | undefined {
    const turn = this.turn;
    if (turn === null || turn.el !== stanza || turn.taken) return undefined;
    this.turn = null;
    turn.taken = true;
    turn.earlier = this.lastTurn;
    this.lastTurn = turn;
    if (this.inflight < MAX_IN_FLIGHT && !this.closed) {
      turn.released = true;
      this.inflight++;
      // Not from inside the handler that called: the next messages start once its synchronous part is done.
      if (this.busy) queueMicrotask(() => { if (this.busy && !this.drainWait && this.throttleTimer === null) this.afterAsync(); });
    }
    return turn;
  }

  private afterAsync(): void {
    this.busy = false;
    const q = this.queue!;
    this.queue = null;
    let i = 0;
    while (i < q.length && !this.closed) {
      if (this.inflight !== 0 && !this.mayOvertake(q[i])) return this.waitForInflight(q.slice(i));
      this.process(q[i++]);
      if (this.busy) {
        // Still waiting: keep the rest in order behind the new wait.
        this.queue!.push(...q.slice(i));
        return;
      }
    }
    if (!this.closed) this.backpressure.release();
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
      if (this.sm !== null) this.sm.countInbound();
      return this.handleStanza(el);
    }
    if (ns === NS_SM) return this.handleSm(el);
    if (ns === NS_CSI && this.jid && (el.name === "active" || el.name === "inactive")) return this.setClientState(el.name);
    if (this.jid) {
      const r = this.ctx.hooks.run(this.host, "stream-element", { session: this, element: el });
      if (isThenable(r)) {
        return r.then((v) => { if (!v) this.close("unsupported-stanza-type", `<${el.name}/> is not supported`); });
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

  /** Holds `el` (and everything after it) until the bucket has a token again; reading pauses meanwhile. */
  private deferForRate(el: Element, wait: number): void {
    this.queue = [el];
    this.busy = true;
    this.backpressure.hold();
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
    if (ns === NS_SASL2 && cfg.auth.sasl2) return (this.sasl2 ??= new Sasl2Negotiation(this.ctx, this)).handle(el);
    if (el.name === "iq" && (ns === undefined || ns === NS.client)) {
      const payload = iqPayload(el);
      const type = el.attrs.type;
      if (!payload || !el.attrs.id || (type !== "get" && type !== "set")) {
        if (type !== "error" && type !== "result") this.send(errorReply(el, "bad-request"));
        return undefined;
      }
      const r = this.ctx.hooks.run(this.host, "preauth-iq", { session: this, stanza: el, ns: payload.getNS() ?? "" });
      const fallback = (v: unknown) => { if (!v) this.send(errorReply(el, "service-unavailable")); };
      if (isThenable(r)) {
        // RFC 6120 §8.2.3: a get or set is answered, also when its handler failed (e.g. the store).
        return r.then(fallback, (err: unknown) => {
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
    this.send(xml("failure", { xmlns: NS.sasl }, xml(condition), text ? xml("text", { "xml:lang": "en" }, text) : null));
    this.countSaslFailure();
  }

  /** @internal SASL and SASL2: RFC 6120 §6.4.5 allows a few retries, then the stream ends. */
  countSaslFailure(): void {
    if (++this.saslFailures >= MAX_SASL_FAILURES_PER_STREAM) this.close("policy-violation", "too many failed authentication attempts");
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
      const started = SaslAttempt.start(this.ctx.login, this.ctx.config.auth, this, el.attrs.mechanism ?? "");
      if (!(started instanceof SaslAttempt)) return this.saslFailure(started.condition, started.text);
      this.sasl = started;
    } else if (el.name !== "response" || !this.sasl) {
      return this.saslFailure("malformed-request");
    }
    const attempt = this.sasl!;
    return attempt.step(input).then((step) => {
      if (this.closed || this.sasl !== attempt) return;
      if (step.kind === "challenge") {
        this.send(xml("challenge", { xmlns: NS.sasl }, step.data.length ? step.data.toString("base64") : "="));
        return;
      }
      if (step.kind === "failure") return this.saslFailure(step.condition, step.text);
      this.sasl = null;
      this.authenticatedAs(step.user);
      this.send(xml("success", { xmlns: NS.sasl }, step.data?.length ? step.data.toString("base64") : null));
      // RFC 6120 §6.4.6: a new stream over the authenticated connection.
      this.parser = this.newParser();
      this.headerSent = false;
      this.state = "header";
    }, (err) => {
      if (this.closed || this.sasl !== attempt) return;
      this.ctx.log.error({ err }, "SASL mechanism failed");
      this.saslFailure("temporary-auth-failure");
    });
  }

  /** @internal SASL and SASL2 (sasl2.ts): the stream is authenticated as the local user `user`. */
  authenticatedAs(user: string): void {
    this.username = user;
    this.authenticated = true;
    this.sasl2 = null;
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
    } else resource = randomString(6, "hex");
    let full: Jid;
    try { full = makeJid(this.username!, this.host, resource); } catch { return this.send(errorReply(el, "bad-request", "invalid resource")); }
    if (!this.claim(full)) return this.send(errorReply(el, "conflict", "the resource is in use"));
    this.send(reply(el, xml("bind", { xmlns: NS.bind }, xml("jid", null, full.toString()))));
    return this.announceBound();
  }

  private claim(full: Jid): boolean {
    if (!claimResource(this.ctx.sessions, this, full, this.ctx.config.c2s.resourceConflict)) return false;
    this.jid = full;
    this.ctx.sessions.add(this);
    return true;
  }

  /** @internal Bind2 (sasl2.ts): binds a resource the server chose; false when it is refused. */
  bindResource(resource: string): boolean {
    try { return this.claim(makeJid(this.username!, this.host, resource)); } catch { return false; }
  }

  /** @internal RFC 6120 §7 and Bind2: the session can receive stanzas now. */
  announceBound(): unknown {
    return this.ctx.hooks.notify(this.host, "resource-bind", { session: this });
  }

  // ---- XEP-0352 client state ----

  setClientState(state: "active" | "inactive"): void {
    if (state === "inactive") { this.inactive ??= new InactiveBuffer(); return; }
    if (this.inactive === null) return;
    this.flushInactive();
    this.inactive = null;
  }

  // ---- XEP-0198 stream management ----

  private handleSm(el: Element): unknown {
    const sm = this.sm;
    switch (el.name) {
      case "enable":
        return this.send(this.enableManagement(el));
      case "r":
        if (sm === null) break;
        return this.writeRaw(`<a xmlns='${NS_SM}' h='${sm.inbound}'/>`);
      case "a": {
        if (sm === null) break;
        const h = parseH(el.attrs.h);
        if (h === null) return this.close("bad-format", "<a/> needs an h between 0 and 2^32-1");
        const n = sm.newlyAcked(h);
        // XEP-0198 §4: acknowledging more than was sent is a stream error.
        if (n < 0) return this.close("undefined-condition", "h acknowledges stanzas never sent", handledCountTooHigh(h, sm.sent));
        sm.ack(h, n);
        sm.requested = false;
        if (n > 0) sm.journal?.touchLater();
        if (sm.queue.length > 0 && !this.resending) this.requestAck(sm);
        return undefined;
      }
      case "resume":
        return this.handleResume(el);
    }
    return this.close("unsupported-stanza-type", `<${el.name}/> needs stream management enabled first`);
  }

  /** XEP-0198 §3 `<enable/>` (also inline in Bind2, XEP-0198 §9): the `<enabled/>` or `<failed/>` answer. */
  enableManagement(el: Element): Element {
    // XEP-0198 §3: only after binding, and once per session.
    if (!this.jid || this.sm !== null) return smFailed("unexpected-request");
    const resume = el.attrs.resume === "true" || el.attrs.resume === "1";
    const limit = this.ctx.config.c2s.smResumeSeconds;
    const asked = Number(el.attrs.max);
    const max = Number.isInteger(asked) && asked > 0 ? Math.min(asked, limit) : limit;
    const registry = resumeRegistry<C2sSession>(this.ctx);
    const id = resume ? registry.newId() : null;
    this.sm = new StreamManagement(id, max);
    if (id) {
      registry.live.set(id, this);
      if (this.ctx.config.c2s.smDurable) this.startJournal(this.sm, 0);
    }
    return xml("enabled", { xmlns: NS_SM, ...(id ? { id, resume: "true", max: String(max) } : {}) });
  }

  /** XEP-0198 §5: a new stream (authenticated, not bound) takes over a session that lost its connection. */
  private handleResume(el: Element): unknown {
    const out = this.tryResume(el, (resumed) => resumed.toString());
    const finish = (o: ResumeOutcome) => ("failed" in o ? this.send(o.failed) : o.done);
    return isThenable(out) ? out.then(finish) : finish(out);
  }

  /**
   * @internal SASL2 (sasl2.ts): XEP-0198 resumption inline in `<authenticate/>`. Either `failed`, the
   * `<failed/>` that goes into the success, or the session is resumed (`announce` wrote `<resumed/>` inside
   * the `<success/>`, before the resent stanzas; `done` when they are written) or the stream closed.
   */
  async resumeInline(el: Element, announce: Announce): Promise<ResumeOutcome> {
    return this.tryResume(el, announce);
  }

  /** Resumes the session `el` names, or the `<failed/>` (not sent) why not. */
  private tryResume(el: Element, announce: Announce): ResumeOutcome | Promise<ResumeOutcome> {
    if (this.jid) return { failed: smFailed("unexpected-request") };
    const previd = el.attrs.previd ?? "";
    const h = parseH(el.attrs.h);
    if (h === null) return { failed: smFailed("bad-request") };
    const registry = resumeRegistry<C2sSession>(this.ctx);
    // Guessing resumption ids is throttled per address, before any lookup.
    const wait = registry.refusedFor(this.remoteAddress);
    if (wait > 0) {
      this.ctx.log.warn({ session: this.id, peer: this.remoteAddress, retryAfterMs: wait }, "resume refused: too many unknown resumption ids");
      return { failed: smFailed("policy-violation") };
    }
    const old = registry.live.get(previd);
    if ((!old || old.closed) && this.ctx.config.c2s.smDurable) return this.resumeFromRecord(previd, h, announce);
    // Another user's session is as unknown to this stream as one that never existed.
    if (!old || old.closed || old.username !== this.username || old.host !== this.host) return { failed: this.resumeUnknown(previd) };
    return old.resumeOn(this, h, announce);
  }

  /**
   * XEP-0198 §5 `<failed/>` with item-not-found (and the h, when the session is known to have ended); an id
   * never seen counts against the address.
   */
  private resumeUnknown(previd: string): Element {
    const registry = resumeRegistry<C2sSession>(this.ctx);
    const h = registry.expiredH(previd, `${this.username}@${this.host}`);
    if (h === undefined) registry.unknownId(this.remoteAddress);
    return smFailed("item-not-found", h);
  }

  /** Moves `stream`'s connection under this session, then resends what the client did not acknowledge. */
  private resumeOn(stream: C2sSession, h: number, announce: Announce): ResumeOutcome {
    const sm = this.sm!;
    const n = sm.newlyAcked(h);
    if (n < 0) {
      stream.close("undefined-condition", "h acknowledges stanzas never sent", handledCountTooHigh(h, sm.sent));
      return { done: undefined };
    }
    sm.ack(h, n);
    if (sm.hibernateTimer) { clearTimeout(sm.hibernateTimer); sm.hibernateTimer = null; }
    sm.journal?.dropHeld();
    if (!this.detached) {
      // The old connection looks alive but the client has left it: its close will come, and means nothing now.
      this.staleCloses++;
      this.transport.end();
    }
    this.transport = stream.transport;
    this.detached = false;
    this.resending = true;
    this.backpressure.reset();
    sm.requested = false;
    stream.resumedInto = this;
    stream.ctx.tracker.delete(stream);
    this.lastActivity = Date.now();
    this.pingSentAt = 0;
    this.writeRaw(announce(resumedElement(sm.inbound, sm.id!), this.jid!.toString()));
    sm.journal?.touch();
    return { done: this.resend(sm, this.transport) };
  }

  // ---- XEP-0198: durable resumption (the record in the store, see sm.ts) ----

  private startJournal(sm: StreamManagement, persistedSent: number): void {
    const userJson = JSON.stringify(this.jid!.bareString()), resourceJson = JSON.stringify(this.jid!.resource);
    sm.journal = new SmJournal(this.ctx.store.map(SM_STORE), this.host, sm.id!, sm.epoch,
      (previousDetachedAt) => snapshotText(sm, userJson, resourceJson, this.presence, this.detached, previousDetachedAt),
      (texts) => {
        if (this.closed || this.detached || this.resending || this.sm !== sm) return;
        for (const t of texts) this.transport.write(t);
        this.requestAck(sm);
      },
      // Another node resumed the session from its record.
      () => this.close("conflict", "the session was resumed elsewhere"),
      this.ctx.log, persistedSent);
    sm.journal.touch();
  }

  /** The shared sweep: a live resumable session keeps its record fresh (SmRecord.at). */
  refreshResumable(now: number): void {
    const sm = this.sm;
    if (sm?.journal && !this.closed && !this.detached && now - sm.journal.writtenAt > sm.max * 500) sm.journal.touch();
  }

  /**
   * A resume for a session this node does not hold (its node died or restarted, or it lives on another
   * node): the record is claimed, this stream becomes the session with the record's resource, counters and
   * unacknowledged rows, and the client's last presence is sent again.
   */
  private async resumeFromRecord(previd: string, h: number, announce: Announce): Promise<ResumeOutcome> {
    const user = `${this.username}@${this.host}`;
    const claim = await claimRecord(this.ctx.store.map(SM_STORE), this.ctx.store.timeline, this.host, previd, user, h);
    if (this.closed || this.jid) return { done: undefined };
    if (claim.kind === "unknown") return { failed: this.resumeUnknown(previd) };
    if (claim.kind === "ended") return { failed: smFailed("item-not-found", claim.h) };
    const r = claim.record;
    if (!ackable(r, h)) {
      this.close("undefined-condition", "h acknowledges stanzas never sent", handledCountTooHigh(h, r.sent));
      return { done: undefined };
    }
    const full = makeJid(this.username!, this.host, r.resource);
    // The resumed session is the newest claim on its resource, whatever c2s.resourceConflict says.
    claimResource(this.ctx.sessions, this, full, "kick-old");
    const sm = new StreamManagement(previd, r.max);
    sm.epoch = claim.epoch;
    sm.inbound = r.inbound;
    sm.acked = h;
    sm.queue = queueAfter(r, h);
    this.jid = full;
    this.sm = sm;
    this.resending = true;
    resumeRegistry<C2sSession>(this.ctx).live.set(previd, this);
    this.ctx.sessions.add(this);
    this.startJournal(sm, h);
    this.writeRaw(announce(resumedElement(sm.inbound, previd), full.toString()));
    await this.ctx.hooks.notify(this.host, "resource-bind", { session: this });
    if (r.presence !== null && !this.closed) {
      // Contacts saw the session go with its node: the presence is broadcast again (and offline delivery
      // of what arrived meanwhile follows it, queued behind the resent rows).
      try { await this.ctx.router.fromClient(this, parseFramedElement(r.presence)); } catch (err) {
        this.ctx.log.warn({ err, session: this.id }, "could not re-establish presence after a resumption");
      }
    }
    return { done: this.resend(sm, this.transport) };
  }

  /** Writes the queue again, in order, once; what arrives meanwhile queues behind it. */
  private async resend(sm: StreamManagement, transport: StreamTransport): Promise<void> {
    const owner = this.jid!.bareString();
    let done = 0;
    try {
      while (done < sm.queue.length) {
        const pending = sm.queue.slice(done);
        const out = await materialize(pending, this.ctx.store.timeline, owner, this.host);
        await sm.journal?.idle();
        if (this.closed || this.detached || this.transport !== transport || this.sm !== sm) return;
        // The client counts what it receives: a row that is gone leaves the queue too.
        const kept: QueuedStanza[] = [];
        for (const { queued, stanza } of out) {
          kept.push(queued);
          this.transport.write(typeof stanza === "string" ? this.reframe(stanza) : this.serialize(stanza));
        }
        sm.queue.splice(done, pending.length, ...kept);
        done += kept.length;
      }
    } catch (err) {
      this.ctx.log.error({ err, session: this.id }, "could not resend unacknowledged stanzas");
      return this.close("internal-server-error", "resumption failed");
    }
    if (this.closed || this.detached || this.transport !== transport) return;
    this.resending = false;
    if (sm.queue.length > 0) this.requestAck(sm);
  }

  /** A stanza written on a TCP stream, resent on a WebSocket: RFC 7395 §3.3 wants its namespace. */
  private reframe(text: string): string {
    if (!this.transport.framed) return text;
    try { return this.serialize(parseFramedElement(text)); } catch { return text; }
  }
}

/** Writes a successful resumption's answer: `<resumed/>` itself, or a SASL2 `<success/>` holding it. */
export type Announce = (resumed: Element, jid: string) => string;

/** How a resume ended: `failed` (not sent yet), or resumed or the stream closed (`done`: the resend). */
export type ResumeOutcome = { failed: Element } | { done: Promise<void> | undefined };

function resumedElement(h: number, previd: string): Element {
  return xml("resumed", { xmlns: NS_SM, h: String(h), previd });
}

function isLegacySession(el: Element): boolean {
  return el.getChild("session", NS.session) !== undefined;
}
