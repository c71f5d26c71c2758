// One mobile connection (a device). Before login it only answers Login and Ping; after login it is an
// ordinary Session bound to the resource `mobile-<deviceId>`: what it asks for becomes stanzas for
// router.fromClient (one request at a time, like a stream handles one stanza at a time), and what the
// router delivers to it through send() becomes pushes.
//
// Delivery of the user's timeline to the device: `sentUpTo` is the highest seq pushed on this
// connection, `acked` the highest the device acknowledged (kept in the store per device). A login
// starts a sync that pushes every row after the resume point in seq order; live rows are pushed
// directly only when they are the next seq, anything else (a gap, a row during the sync) goes through
// the same ordered catch-up. So each row reaches the device once per connection, in order, and a
// row the device acknowledged is never pushed to it again. Rows reach the session only once its login
// sync has started (after the LoginResult): until then the sync's resume point is not known.
//
// Frame order. Every frame is written synchronously where it is decided, never after an unrelated await:
// pushes produced while a login is in progress wait until the LoginResult is written, roster pushes
// (which need a store lookup) leave one after the other in the order the router delivered them, and the
// SyncState is written only after a last check that no row arrived while it was being prepared.
import { TokenBucket } from "../sessions/rate.js";
import { Backpressure } from "../sessions/backpressure.js";
import { SessionState, type DeliveryMeta, type Session } from "../sessions/session.js";
import type { Element } from "../xml/element.js";
import { xml } from "../xml/element.js";
import { StanzaError, errorReply, reply, type StreamErrorCondition } from "../xml/stanza.js";
import { NS } from "../xml/ns.js";
import { tryParseJid, type Jid } from "../jid/jid.js";
import { decodeFrame, encodeFrame, errorBody } from "./codec.js";
import {
  ConversationType, ErrorCode, KickReason, Platform, isRequest, REQUESTS,
  type Envelope, type Message, type PayloadName, type Payloads, type Presence, type RequestName,
} from "./schema.js";
import { MobileError, stanzaCondition, fromCondition, fromStanzaError } from "./errors.js";
import { MNS, contactFromItem, contactFromItemElement, messageFromStanza, presenceFromStanza, retractTarget } from "./bridge.js";
import { toMessages, type MobileContext } from "./context.js";
import { OutboundGuard } from "../sessions/outbound.js";
import { contain } from "../log.js";

/** The connection under a session: a WebSocket in production. */
export interface MobileTransport {
  readonly remoteAddress: string;
  readonly secure: boolean;
  /** Bytes accepted by send() and not yet written to the socket. */
  readonly bufferedAmount: number;
  send(frame: Uint8Array): void;
  /** Closes after queued frames are written (WebSocket close code and reason). */
  close(code: number, reason: string): void;
  pause(): void;
  resume(): void;
}

export type PlatformClass = "phone" | "tablet" | "desktop" | "web";

export function platformClass(p: Platform): PlatformClass {
  switch (p) {
    case Platform.IOS: case Platform.ANDROID: return "phone";
    case Platform.IPADOS: case Platform.ANDROID_TABLET: return "tablet";
    case Platform.WINDOWS: case Platform.MACOS: case Platform.LINUX: return "desktop";
    default: return "web";
  }
}

/** WebSocket close codes (RFC 6455 §7.4): normal, going away, policy, internal. */
export const CLOSE = { normal: 1000, goingAway: 1001, policy: 1008, internal: 1011 } as const;

const KICK_FOR: Partial<Record<StreamErrorCondition, KickReason>> = {
  conflict: KickReason.REPLACED,
  "not-authorized": KickReason.ACCOUNT_DELETED,
  "system-shutdown": KickReason.SERVER_SHUTDOWN,
  "connection-timeout": KickReason.HEARTBEAT_TIMEOUT,
  "policy-violation": KickReason.POLICY_VIOLATION,
};

let iqCounter = 0;

export class MobileSession extends SessionState implements Session {
  readonly protocol = "mobile" as const;
  host: string;

  deviceId = "";
  platform: Platform = Platform.UNSPECIFIED;
  platformClass: PlatformClass = "web";
  clientVersion = "";
  /** SHA-256 of the token this connection logged in with. */
  tokenHash: string | null = null;
  loggedInAt = 0;
  readonly openedAt = Date.now();
  lastActivity = this.openedAt;
  background = false;
  loginFailures = 0;

  /** Highest seq of the user's timeline pushed on this connection (or known to the device). */
  sentUpTo = 0;
  /** Highest seq the device acknowledged (persisted). */
  acked = 0;
  private syncing = false;
  private syncAgain = false;
  private initialSync = false;
  /** Timeline rows are pushed: the login sync has started. */
  private delivering = false;
  private windowWaiter: (() => void) | null = null;
  private ackWriteScheduled = false;

  private readonly queue: Envelope[] = [];
  private busy = false;
  private readonly backpressure = new Backpressure(() => this.transport);
  private readonly rate: TokenBucket;
  private readonly pendingIqs = new Map<string, (el: Element) => void>();
  private heldPresence: Map<string, Presence> | null = null;
  private outMessages: Message[] | null = null;
  /** Pushes produced during the login, written after the LoginResult (null: write at once). */
  private heldPushes: Uint8Array[] | null = null;
  /** The end of the chain of roster pushes (each needs a store lookup; they leave in delivery order). */
  private rosterPushes: Promise<void> = Promise.resolve();
  /** Set by a handler: runs after its reply is written, still in the request's turn. */
  afterReply: (() => unknown) | null = null;
  private readonly outbound: OutboundGuard;
  private overflowed = false;

  constructor(readonly ctx: MobileContext, private readonly transport: MobileTransport) {
    super();
    this.host = ctx.api.hosts[0]!;
    this.outbound = new OutboundGuard(ctx.opts.maxPendingOutputBytes);
    this.rate = new TokenBucket(ctx.opts.requestsPerSecond, ctx.opts.requestBurst);
    ctx.connections.add(this);
  }

  get remoteAddress(): string { return this.transport.remoteAddress; }
  get secure(): boolean { return this.transport.secure; }
  get authenticated(): boolean { return this.jid !== null; }
  /** The user's bare JID (after login). */
  get owner(): string { return this.jid!.bareString(); }

  // ---- input ----

  onFrame(data: Buffer, isBinary: boolean): void {
    if (this.closed) return;
    this.lastActivity = Date.now();
    if (!isBinary) return this.writeError(0, ErrorCode.BAD_FRAME, "text frames are not part of the protocol: send binary Envelope frames");
    const r = decodeFrame(data, this.ctx.opts.maxFrameBytes);
    if (!r.ok) return this.writeError(r.requestId, r.code, r.message);
    const env = r.envelope;
    if (env.payload === "ping") {
      return this.reply(env.requestId, "pong", { serverTime: Date.now(), clientTime: env.body.clientTime });
    }
    if (!isRequest(env.payload)) {
      return this.writeError(env.requestId, ErrorCode.UNKNOWN_PAYLOAD, `${env.payload} is not a request`);
    }
    if (!this.authenticated && env.payload !== "login") {
      return this.writeError(env.requestId, ErrorCode.NOT_AUTHENTICATED, "log in first");
    }
    if (env.payload === "ack" && this.authenticated) {
      // Acks bypass the queue and the rate limit: they only move a pointer forward.
      this.onAck(env.body.seq, env.body.conversation);
      if (env.requestId !== 0) this.reply(env.requestId, "ok", {});
      return;
    }
    const wait = this.rate.take();
    if (wait > 0) return this.writeError(env.requestId, ErrorCode.RATE_LIMITED, "too many requests", wait);
    if (this.busy) {
      this.queue.push(env);
      this.backpressure.waiting(this.queue.length);
      return;
    }
    contain(this.run(env), this.ctx.log, "mobile request", { session: this.id });
  }

  private async run(first: Envelope): Promise<void> {
    this.busy = true;
    let env: Envelope | undefined = first;
    while (env && !this.closed) {
      await this.execute(env);
      env = this.queue.shift();
    }
    this.busy = false;
    if (!this.closed) this.backpressure.release();
  }

  private async execute(env: Envelope): Promise<void> {
    const name = env.payload as RequestName;
    try {
      const handler = this.ctx.handlers[name] as (s: MobileSession, body: unknown) => unknown;
      const result = await handler(this, env.body);
      this.reply(env.requestId, REQUESTS[name], result as Payloads[(typeof REQUESTS)[typeof name]]);
    } catch (err) {
      if (err instanceof MobileError) this.writeError(env.requestId, err.code, err.message, err.retryAfterMs);
      else {
        this.ctx.log.error({ err, session: this.id, request: name }, "mobile request failed");
        this.writeError(env.requestId, ErrorCode.INTERNAL, "internal error");
      }
    }
    // After the answer, whichever it was: a failed login may close the connection (1008).
    const after = this.afterReply;
    this.afterReply = null;
    // Pushes held back during a login follow its reply.
    this.releasePushes();
    if (!after) return;
    try {
      await after();
    } catch (err) {
      // The request was answered already: a second answer would break the one-reply-per-request rule.
      if (!(err instanceof MobileError)) this.ctx.log.error({ err, session: this.id, request: name }, "mobile request: the work after the reply failed");
    }
  }

  // ---- output ----

  private write(frame: Uint8Array): void {
    if (this.closed) return;
    this.transport.send(frame);
    this.outbound.wrote(frame.byteLength);
    if (!this.overflowed && this.outbound.exceeded(this.transport.bufferedAmount)) {
      // Once: the Kicked push written by kick() comes back through here.
      this.overflowed = true;
      this.kick(KickReason.POLICY_VIOLATION, "the device does not read its pushes (slow consumer)");
    }
  }

  reply<K extends PayloadName>(requestId: number, name: K, body: Payloads[K]): void {
    if (this.closed) return;
    this.flushMessages();
    const frame = encodeFrame(requestId, name, body);
    if (requestId === 0 && name !== "error") this.writePush(frame);
    else this.write(frame);
  }

  /** A push: written now, or after the LoginResult while a login is in progress. */
  private writePush(frame: Uint8Array): void {
    if (this.heldPushes !== null) this.heldPushes.push(frame);
    else this.write(frame);
  }

  /** Login: from now until its reply is written, pushes wait (the session is registered before it replies). */
  holdPushes(): void {
    this.heldPushes ??= [];
  }

  private releasePushes(): void {
    const held = this.heldPushes;
    if (held === null) return;
    this.heldPushes = null;
    for (const frame of held) this.write(frame);
  }

  push<K extends PayloadName>(name: K, body: Payloads[K]): void {
    this.reply(0, name, body);
  }

  writeError(requestId: number, code: ErrorCode, message: string, retryAfterMs = 0): void {
    this.reply(requestId, "error", errorBody(code, message, retryAfterMs));
  }

  /** Messages pushed in one tick leave as one MessagePush frame. */
  private queueMessage(m: Message): void {
    if (this.outMessages === null) {
      this.outMessages = [];
      process.nextTick(this.flushMessages);
    }
    this.outMessages.push(m);
  }

  private readonly flushMessages = (): void => {
    const list = this.outMessages;
    if (list === null) return;
    this.outMessages = null;
    if (list.length > 0 && !this.closed) this.writePush(encodeFrame(0, "messagePush", { messages: list }));
  };

  // ---- delivery of the user's timeline ----

  /** A row of the user's timeline exists at `seq`: push it now if it is the next one, else catch up. */
  onRow(seq: number, make: () => Message | null, needsLookup = false): void {
    // Before the login sync starts, the resume point is not set yet: the sync will read these rows.
    if (this.closed || !this.delivering || seq <= this.sentUpTo) return;
    if (this.syncing) { this.syncAgain = true; return; }
    if (seq === this.sentUpTo + 1 && !needsLookup) {
      this.sentUpTo = seq;
      const m = make();
      if (m) this.queueMessage(m);
      return;
    }
    contain(this.sync(), this.ctx.log, "mobile sync", { session: this.id });
  }

  /** Pushes every row after sentUpTo, in order, in batches, within the unacknowledged window. */
  async sync(initial = false): Promise<void> {
    if (initial) { this.initialSync = true; this.delivering = true; }
    if (this.syncing) { this.syncAgain = true; return; }
    this.syncing = true;
    const owner = this.owner;
    const { syncBatch } = this.ctx.opts;
    const timeline = this.ctx.api.store.timeline;
    try {
      const recalls = await this.ctx.conversations.recalls(owner);
      for (;;) {
        do {
          this.syncAgain = false;
          for (;;) {
            const wait = this.windowFull();
            if (wait) await wait;
            // The catch-up goes no faster than the device reads, so it never runs into the outbound limit.
            if (!(await this.drained())) return;
            const room = this.ctx.opts.syncWindow - (this.sentUpTo - this.acked);
            const rows = await timeline.query(owner, { afterSeq: this.sentUpTo, limit: Math.min(syncBatch, room) });
            if (this.closed) return;
            if (rows.length === 0) break;
            const from = this.sentUpTo;
            for (const row of rows) if (this.ctx.groups.isGroupJidText(row.peer)) this.ctx.groups.fromTimeline(this, row);
            const messages = await toMessages(this.ctx, owner, rows, recalls);
            // A concurrent ack of our own send may have moved sentUpTo; never go back.
            if (this.sentUpTo !== from) { this.syncAgain = true; break; }
            this.sentUpTo = rows[rows.length - 1]!.seq;
            this.flushMessages();
            if (messages.length > 0) this.writePush(encodeFrame(0, "messagePush", { messages }));
            if (rows.length < Math.min(syncBatch, room)) break;
          }
        } while (this.syncAgain && !this.closed);
        if (!this.initialSync || this.closed) break;
        const maxSeq = await timeline.lastSeq(owner);
        if (this.closed) return;
        // A row that arrived while maxSeq was read was left to this sync (onRow saw it syncing): push it
        // first, so that SyncState follows every row up to syncedSeq.
        if (this.syncAgain) continue;
        this.initialSync = false;
        this.push("syncState", { syncedSeq: this.sentUpTo, maxSeq: Math.max(maxSeq, this.sentUpTo), complete: true, conversation: "" });
        break;
      }
    } catch (err) {
      this.ctx.log.error({ err, session: this.id }, "mobile sync failed");
    } finally {
      this.syncing = false;
    }
    // Callers fire and forget: nothing may escape (an unhandled rejection ends the process).
    try {
      await this.ctx.groups.syncSession(this);
    } catch (err) {
      this.ctx.log.error({ err, session: this.id }, "mobile group sync failed");
    }
  }

  /**
   * Waits until at most half the outbound limit is queued; false when the session closed meanwhile. A device
   * that reads nothing of it for the outbound guard's stall time is closed, as one over the limit would be.
   */
  private async drained(): Promise<boolean> {
    const half = this.ctx.opts.maxPendingOutputBytes / 2;
    if (this.transport.bufferedAmount <= half) return !this.closed;
    const stall = new OutboundGuard(half);
    stall.wrote(this.transport.bufferedAmount);
    while (!this.closed && this.transport.bufferedAmount > half) {
      await new Promise((r) => setTimeout(r, 20));
      if (!this.overflowed && stall.exceeded(this.transport.bufferedAmount)) {
        this.overflowed = true;
        this.kick(KickReason.POLICY_VIOLATION, "the device does not read its pushes (slow consumer)");
      }
    }
    return !this.closed;
  }

  private windowFull(): Promise<void> | null {
    if (this.sentUpTo - this.acked < this.ctx.opts.syncWindow) return null;
    return new Promise((resolve) => { this.windowWaiter = resolve; });
  }

  onAck(seq: number, conversation: string): void {
    if (conversation !== "") { this.ctx.groups.onAck(this, conversation, seq); return; }
    const upTo = Math.min(seq, this.sentUpTo);
    if (!Number.isSafeInteger(upTo) || upTo <= this.acked) return;
    this.acked = upTo;
    // One store write per tick, however many acks came in it (ctx.devices keeps the writes in order).
    if (!this.ackWriteScheduled) {
      this.ackWriteScheduled = true;
      setImmediate(() => { if (this.ackWriteScheduled) this.storeAck(); });
    }
    const w = this.windowWaiter;
    if (w && this.sentUpTo - this.acked < this.ctx.opts.syncWindow) { this.windowWaiter = null; w(); }
  }

  private storeAck(): void {
    this.ackWriteScheduled = false;
    void this.ctx.devices.set(this.owner, `ack:${this.deviceId}`, String(this.acked)).catch((err) => this.ctx.log.error({ err }, "storing a device ack failed"));
  }

  /** Our own message was stored at `seq`: the device has it through its SendAck. */
  ownRowAcked(seq: number): void {
    if (seq === this.sentUpTo + 1 && !this.syncing) this.sentUpTo = seq;
  }

  // ---- requests that become stanzas ----

  /**
   * Routes a message from this device and waits for the IM rules' verdict: the sender's timeline row
   * (a new one, or the first one for a resend), or the error they bounced.
   */
  async sendMessage(stanza: Element, id: string, group: string | null = null): Promise<{ meta: DeliveryMeta | null; duplicate: boolean; groupStanzaId: string | null }> {
    if (this.closed) throw new MobileError(ErrorCode.UNAVAILABLE, "the connection closed");
    // The delivery result is the SendAck: the user's own row for a 1:1 message, the room's row for a group's.
    const result = await this.ctx.api.router.submit(this, stanza);
    if (result instanceof StanzaError) throw fromCondition(result.condition, result.text ?? "", "the message was not delivered");
    if (group === null) return { meta: result.sender, duplicate: result.duplicate, groupStanzaId: null };
    if (result.sender === null) throw new MobileError(ErrorCode.RECIPIENT_UNAVAILABLE, "the message was not accepted");
    return { meta: null, duplicate: result.duplicate, groupStanzaId: result.sender.stanzaId };
  }

  /** Sends an iq from this device and returns the answer (result or error). */
  async iq(el: Element): Promise<Element> {
    const id = `mob${(iqCounter++).toString(36)}`;
    el.attrs.id = id;
    let resolve!: (el: Element) => void;
    const answered = new Promise<Element>((r) => { resolve = r; });
    this.pendingIqs.set(id, resolve);
    try {
      await this.ctx.api.router.fromClient(this, el);
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new MobileError(ErrorCode.TIMEOUT, "no answer from the server")), 10_000);
      });
      try {
        return await Promise.race([answered, timeout]);
      } finally {
        clearTimeout(timer);
      }
    } finally {
      this.pendingIqs.delete(id);
    }
  }

  /** Routes a stanza (presence, markers) from this device. */
  async route(el: Element): Promise<void> {
    // A session that ended (e.g. during its login) must not become available again.
    if (this.closed) throw new MobileError(ErrorCode.UNAVAILABLE, "the connection closed");
    await this.ctx.api.router.fromClient(this, el);
  }

  // ---- what the router delivers: stanzas become pushes ----

  send(stanza: Element, meta?: DeliveryMeta): void {
    if (this.closed) return;
    this.ctx.api.router.traffic.sent(stanza.name);
    try {
      switch (stanza.name) {
        case "message": return this.onMessage(stanza, meta);
        case "presence": return this.onPresence(stanza);
        case "iq": return this.onIq(stanza);
      }
    } catch (err) {
      this.ctx.log.error({ err, session: this.id, stanza: stanza.toString() }, "mobile: translating a stanza failed");
    }
  }

  private onMessage(stanza: Element, meta: DeliveryMeta | undefined): void {
    const type = stanza.attrs.type ?? "normal";
    // Errors about this device's own sends are its delivery results (Router.submit).
    if (type === "error") return;
    if (type === "groupchat" || this.ctx.groups.isGroupStanza(stanza)) {
      // A row of the user's own timeline from the group service (an invitation): a group event.
      if (meta && type !== "groupchat") this.onRow(meta.seq, () => null);
      this.ctx.groups.onStanza(this, stanza, meta);
      return;
    }
    const fromJid = tryParseJid(stanza.attrs.from);
    if (!fromJid) return;
    const from = fromJid.bareString();
    if (meta) {
      const needsLookup = retractTarget(stanza) !== null;
      this.onRow(meta.seq, () => messageFromStanza(stanza, {
        seq: meta.seq, stanzaId: meta.stanzaId, ts: meta.ts, conversation: from, type: ConversationType.DIRECT, outgoing: false, from,
      }), needsLookup);
      return;
    }
    // Receipts and chat markers are pushed by the module's hooks (they need a timeline lookup).
    if (stanza.getChild("received", MNS.receipts) || stanza.getChild("displayed", MNS.markers) || stanza.getChild("received", MNS.markers)) return;
    if (stanza.getChild("body") !== undefined) {
      // Not stored (a no-store hint, a headline): pushed as it is, with seq 0.
      this.queueMessage(messageFromStanza(stanza, {
        seq: 0, stanzaId: "", ts: Date.now(), conversation: from, type: ConversationType.DIRECT, outgoing: false, from,
      }));
    }
  }

  private onPresence(stanza: Element): void {
    const type = stanza.attrs.type;
    if (type === "subscribe") {
      this.push("contactRequest", { from: tryParseJid(stanza.attrs.from)?.bareString() ?? "", message: stanza.getChildText("status") ?? "" });
      return;
    }
    if (type !== undefined && type !== "unavailable") return;
    if (this.ctx.groups.isGroupStanza(stanza)) return this.ctx.groups.onStanza(this, stanza, undefined);
    // The echo of this device's own presence (RFC 6121 §4.2.2) tells the device nothing.
    if (stanza.attrs.from === this.jid?.toString()) return;
    const p = presenceFromStanza(stanza);
    if (this.background) {
      // XEP-0352 client state "inactive": only the newest presence of each resource, when active again.
      (this.heldPresence ??= new Map()).set(p.jid, p);
      return;
    }
    this.push("presencePush", { presence: p });
  }

  private onIq(stanza: Element): void {
    const type = stanza.attrs.type;
    const id = stanza.attrs.id ?? "";
    if (type === "result" || type === "error") {
      const waiter = this.pendingIqs.get(id);
      if (waiter) { this.pendingIqs.delete(id); waiter(stanza); }
      return;
    }
    const query = stanza.getChild("query", NS.roster);
    if (type === "set" && query) {
      const item = query.getChild("item");
      if (item) {
        const version = Number(query.attrs.ver ?? "0");
        this.queueRosterPush(() => this.rosterPushOf(item, version));
      }
      return;
    }
    if (type === "get" && stanza.getChild("ping", MNS.ping)) {
      contain(this.ctx.api.router.route(reply(stanza)), this.ctx.log, "ping reply");
      return;
    }
    if (type === "get" || type === "set") contain(this.ctx.api.router.route(errorReply(stanza, "service-unavailable")), this.ctx.log, "iq error reply");
  }

  /**
   * Roster pushes leave in the order they were queued: each waits for the ones before it, so a push that
   * needs no lookup (a removal) cannot overtake an earlier one that is still reading the store.
   */
  queueRosterPush(make: () => Promise<Payloads["rosterPush"] | Payloads["rosterPush"][]> | Payloads["rosterPush"]): void {
    this.rosterPushes = this.rosterPushes
      .then(async () => {
        if (this.closed) return;
        const made = await make();
        for (const push of Array.isArray(made) ? made : [made]) this.push("rosterPush", push);
      })
      .catch((err) => this.ctx.log.error({ err, session: this.id }, "mobile: a roster push failed"));
  }

  private async rosterPushOf(item: Element, version: number): Promise<Payloads["rosterPush"]> {
    const jid = item.attrs.jid ?? "";
    const removed = item.attrs.subscription === "remove";
    // The roster push carries what XMPP has; a contact request (pending in, its message) is in the store.
    const stored = removed ? null : await this.ctx.api.store.roster.getItem(this.owner, jid);
    const contact = stored ? contactFromItem(stored) : contactFromItemElement(item);
    contact.blocked = (await this.ctx.blocking.list(this.owner)).includes(jid);
    return { contact, version };
  }

  // ---- background mode ----

  setBackground(background: boolean): void {
    if (this.background === background) return;
    this.background = background;
    // Tell the rest of the server as an XMPP client would (XEP-0352).
    contain(this.ctx.api.run(this.host, "stream-element", { session: this, element: xml(background ? "inactive" : "active", { xmlns: MNS.csi }) }), this.ctx.log, "client state", { session: this.id });
    if (!background && this.heldPresence) {
      const held = this.heldPresence;
      this.heldPresence = null;
      for (const p of held.values()) this.push("presencePush", { presence: p });
    }
  }

  // ---- ending ----

  /** Ends the session with a Kicked push. */
  kick(reason: KickReason, message: string, by?: { deviceId: string; platform: Platform }): void {
    if (this.closed) return;
    if (this.authenticated) this.push("kicked", { reason, message, byDeviceId: by?.deviceId ?? "", byPlatform: by?.platform ?? Platform.UNSPECIFIED });
    const code = reason === KickReason.SERVER_SHUTDOWN ? CLOSE.goingAway : reason === KickReason.POLICY_VIOLATION ? CLOSE.policy : CLOSE.normal;
    this.end(code, message, reason === KickReason.HEARTBEAT_TIMEOUT ? "heartbeat timeout" : "kicked");
  }

  /** Session.close: the server ends the session (stream errors map to Kicked reasons). */
  close(error?: StreamErrorCondition, text?: string): void {
    if (this.closed) return;
    if (error) this.kick(KICK_FOR[error] ?? KickReason.UNSPECIFIED, text ?? error);
    else this.end(CLOSE.normal, text ?? "", "closed");
  }

  /** Closes the WebSocket after the frames written so far. */
  end(code: number, message: string, reason: string): void {
    if (this.closed) return;
    this.flushMessages();
    this.releasePushes();
    this.transport.close(code, message.slice(0, 120));
    this.cleanup(reason);
  }

  /** The WebSocket closed under us. */
  onTransportClose(): void {
    if (this.closed) return;
    this.cleanup("disconnected");
  }

  private cleanup(reason: string): void {
    // The last ack goes to the store now (not at the next tick), ahead of a login of the same device.
    if (this.ackWriteScheduled && this.jid) this.storeAck();
    this.closed = true;
    this.ctx.connections.delete(this);
    this.outMessages = null;
    const w = this.windowWaiter;
    this.windowWaiter = null;
    if (w) w();
    if (this.jid && this.ctx.api.sessions.remove(this)) {
      void this.ctx.api.notify(this.host, "resource-unbind", { session: this, reason });
    }
    this.ctx.groups.sessionClosed(this);
  }

  /** Checks a request's stanza-level error answer; returns the answer when it is a result. */
  static checkIq(answer: Element, what: string): Element {
    if (answer.attrs.type === "error") throw fromStanzaError(answer, what);
    return answer;
  }

  static conditionOf(el: Element): string {
    return stanzaCondition(el);
  }
}
