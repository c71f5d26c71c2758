// The TypeScript client of the mobile protocol, built on the same .proto files as the server. The tests
// use it; it is also the reference for app developers: what a Kotlin or Swift client does is here in
// one file (schemas/proto/README.md describes the same flows).
//
//   const c = await MobileClient.connect("ws://host:5290/mobile");
//   await c.login({ username: "alice", password: "…", deviceId: "pixel-7", platform: Platform.ANDROID });
//   c.onMessage = (m) => …;                 // every pushed message, once (deduplicated by seq)
//   const ack = await c.send("bob@host", "hello");   // resolves after the server stored it
//
// What it does for you: request ids and replies, heartbeats at the interval the server asks for,
// acknowledging pushed messages (after they are handed to onMessage: that is where an app stores them),
// dropping a message pushed twice, and resending with the same client message id (sendReliably).
import { randomUUID } from "node:crypto";
import WebSocket from "ws";
import { decodeFrame, encodeFrame } from "../../src/mobile/codec.js";
import {
  ContentType, ErrorCode, Platform, PROTOCOL_VERSION,
  type LoginRequest, type LoginResult, type Message, type PayloadName, type Payloads, type RequestName, type ResponseOf,
  type SendAck, type SendMessage, type SyncState, REQUESTS,
} from "../../src/mobile/schema.js";

export { ContentType, ErrorCode, Platform } from "../../src/mobile/schema.js";
export type * from "../../src/mobile/schema.js";

/** A request answered with an Error frame. */
export class MobileRequestError extends Error {
  override readonly name = "MobileRequestError";
  constructor(readonly code: ErrorCode, message: string, readonly retryAfterMs = 0) {
    super(`${code}: ${message}`);
  }
}

export interface MobileClientOptions {
  /** Acknowledge pushed messages automatically (default true). */
  autoAck?: boolean;
  /** Send XEP-0184 receipts for messages that request them (default false). */
  autoReceipts?: boolean;
  /** Ping at the interval the server asks for (default true). */
  heartbeat?: boolean;
  requestTimeoutMs?: number;
  /** Keep every push in an inbox for nextPush() (default true; off for load generators). */
  keepPushes?: boolean;
  /** The largest frame this client sends as is; tests raise it to send oversized frames. */
  maxFrameBytes?: number;
}

interface Pending { name: RequestName; resolve(v: unknown): void; reject(e: Error): void; timer: NodeJS.Timeout }
interface Push { name: PayloadName; body: unknown }
interface Waiter { match(p: Push): boolean; resolve(p: Push): void; reject(e: Error): void; timer: NodeJS.Timeout }

export type LoginOptions = Partial<LoginRequest> & { username: string; deviceId: string };

export class MobileClient {
  /** Every message of the user's timeline this device holds, by seq (pushes, send acks, pulls). */
  readonly messages = new Map<number, Message>();
  /** Every DIRECT message pushed to this connection, in arrival order, duplicates included (for tests). */
  readonly pushed: Message[] = [];
  /** Group messages by group JID, then by the group's seq. */
  readonly groupMessages = new Map<string, Map<number, Message>>();
  session: LoginResult | null = null;
  /** The highest seq of the user's timeline acknowledged to the server. */
  ackedSeq = 0;
  onMessage: ((m: Message) => void) | null = null;
  onPush: ((name: PayloadName, body: unknown) => void) | null = null;
  closeInfo: { code: number; reason: string } | null = null;

  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private readonly inbox: Push[] = [];
  private readonly waiters: Waiter[] = [];
  private readonly closeWaiters: Array<() => void> = [];
  private heartbeatTimer: NodeJS.Timeout | null = null;
  private ackScheduled = false;
  private highestPushed = 0;
  private readonly groupAcks = new Map<string, number>();
  private syncWaiters: Array<(s: SyncState) => void> = [];
  private syncDone: SyncState | null = null;
  private readonly opts: Required<MobileClientOptions>;

  private constructor(readonly ws: WebSocket, opts: MobileClientOptions) {
    this.opts = {
      autoAck: opts.autoAck ?? true,
      autoReceipts: opts.autoReceipts ?? false,
      heartbeat: opts.heartbeat ?? true,
      requestTimeoutMs: opts.requestTimeoutMs ?? 10_000,
      keepPushes: opts.keepPushes ?? true,
      maxFrameBytes: opts.maxFrameBytes ?? 64 * 1024 * 1024,
    };
    ws.on("message", (data: Buffer, isBinary: boolean) => this.onFrame(data, isBinary));
    ws.on("close", (code: number, reason: Buffer) => this.onClose(code, reason.toString()));
    ws.on("error", () => { /* a close follows */ });
  }

  static connect(url: string, opts: MobileClientOptions = {}): Promise<MobileClient> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url, ["hearth.mobile.v1"], { maxPayload: 256 * 1024 * 1024 });
      ws.binaryType = "nodebuffer";
      const client = new MobileClient(ws, opts);
      ws.once("open", () => resolve(client));
      ws.once("error", reject);
    });
  }

  get isClosed(): boolean { return this.closeInfo !== null; }

  // ---- requests ----

  request<K extends RequestName>(name: K, body: Partial<Payloads[K]> = {}): Promise<ResponseOf<K>> {
    if (this.isClosed) return Promise.reject(new Error("the connection is closed"));
    const requestId = this.nextId;
    this.nextId = this.nextId >= 0xffffffff ? 1 : this.nextId + 1;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(requestId);
        reject(new MobileRequestError(ErrorCode.TIMEOUT, `${name}: no reply within ${this.opts.requestTimeoutMs} ms`));
      }, this.opts.requestTimeoutMs);
      this.pending.set(requestId, { name, resolve: resolve as (v: unknown) => void, reject, timer });
      this.ws.send(encodeFrame(requestId, name, body as Payloads[K]));
    });
  }

  /** Logs in; pushes (the sync from the last acknowledged seq) follow the reply. */
  async login(o: LoginOptions): Promise<LoginResult> {
    const req: Partial<LoginRequest> = {
      username: o.username, deviceId: o.deviceId, platform: o.platform ?? Platform.ANDROID,
      clientVersion: o.clientVersion ?? "hearth-ts-client/1", protocolVersion: o.protocolVersion ?? PROTOCOL_VERSION,
      background: o.background ?? false,
    };
    if (o.password !== undefined) req.password = o.password;
    if (o.token !== undefined) req.token = o.token;
    if (o.resumeAfterSeq !== undefined) req.resumeAfterSeq = o.resumeAfterSeq;
    return this.request("login", req);
  }

  private onLoggedIn(result: LoginResult): void {
    this.session = result;
    this.ackedSeq = result.resumeAfterSeq;
    this.highestPushed = result.resumeAfterSeq;
    if (this.opts.heartbeat && result.heartbeatIntervalMs > 0) {
      this.heartbeatTimer = setInterval(() => { void this.request("ping", { clientTime: Date.now() }).catch(() => {}); }, result.heartbeatIntervalMs);
      this.heartbeatTimer.unref();
    }
  }

  /** Sends a message; resolves with the server's acknowledgement (after the durable write). */
  send(to: string, body: string, extra: Partial<SendMessage> = {}): Promise<SendAck> {
    return this.sendMessage({ clientMsgId: randomUUID(), to, body, contentType: ContentType.TEXT, ...extra });
  }

  async sendMessage(msg: Partial<SendMessage> & { clientMsgId: string; to: string }): Promise<SendAck> {
    const ack = await this.request("send", msg);
    if (ack.seq > 0 && !this.isGroup(msg.to)) {
      this.messages.set(ack.seq, {
        seq: ack.seq, serverMsgId: ack.serverMsgId, clientMsgId: msg.clientMsgId, conversation: msg.to, conversationType: 0,
        from: this.session?.jid.split("/")[0] ?? "", outgoing: true, serverTime: ack.serverTime, contentType: msg.contentType ?? 0,
        body: msg.body ?? "", mentions: msg.mentions ?? [], searchableText: msg.searchableText ?? "", payload: msg.payload ?? new Uint8Array(0),
        kind: 0, recalled: false, recallTargetSeq: 0, recallTargetClientMsgId: "", receiptRequested: false,
      });
    }
    return ack;
  }

  /**
   * Uploads a file through a slot (media.proto) and returns the URL to send: RequestUpload, then an HTTP
   * PUT of the bytes with the slot's headers. A real app streams the file from disk instead.
   */
  async uploadFile(data: Uint8Array, filename: string, contentType: string): Promise<string> {
    const slot = await this.request("requestUpload", { filename, size: data.length, contentType });
    const headers: Record<string, string> = { "content-type": contentType };
    for (const h of slot.putHeaders) headers[h.name] = h.value;
    const res = await fetch(slot.putUrl, { method: "PUT", headers, body: new Blob([new Uint8Array(data)]) });
    if (res.status !== 201 && res.status !== 200) throw new Error(`upload failed: HTTP ${res.status} ${await res.text()}`);
    return slot.getUrl;
  }

  /** Uploads a file and sends it as a media message (its URL in the body). */
  async sendFile(to: string, data: Uint8Array, filename: string, contentType: string, kind: ContentType): Promise<{ url: string; ack: SendAck }> {
    const url = await this.uploadFile(data, filename, contentType);
    return { url, ack: await this.send(to, url, { contentType: kind }) };
  }

  private isGroup(to: string): boolean {
    const d = this.session?.groupDomain;
    return !!d && to.endsWith(`@${d}`);
  }

  // ---- frames ----

  /** Sends raw bytes (tests: malformed and oversized frames). */
  sendRaw(data: Uint8Array | string, binary = true): void {
    this.ws.send(data, { binary });
  }

  private onFrame(data: Buffer, isBinary: boolean): void {
    if (!isBinary) return;
    const r = decodeFrame(data, this.opts.maxFrameBytes);
    if (!r.ok) return;
    const env = r.envelope;
    if (env.requestId !== 0) {
      const p = this.pending.get(env.requestId);
      if (!p) return;
      this.pending.delete(env.requestId);
      clearTimeout(p.timer);
      if (env.payload === "error") p.reject(new MobileRequestError(env.body.code, env.body.message, env.body.retryAfterMs));
      else if (env.payload !== REQUESTS[p.name]) p.reject(new Error(`${p.name}: unexpected reply ${env.payload}`));
      else {
        // Pushes can follow in the same read, before the caller resumes: take the session now.
        if (env.payload === "loginResult") this.onLoggedIn(env.body);
        p.resolve(env.body);
      }
      return;
    }
    if (env.payload === "messagePush") this.onMessages(env.body.messages);
    if (env.payload === "syncState" && env.body.complete && env.body.conversation === "") {
      this.syncDone = env.body;
      for (const w of this.syncWaiters.splice(0)) w(env.body);
    }
    this.onPush?.(env.payload, env.body);
    if (this.opts.keepPushes || env.payload !== "messagePush") this.deliverPush({ name: env.payload, body: env.body });
  }

  private onMessages(messages: Message[]): void {
    for (const m of messages) {
      if (m.conversationType === 1) {
        let g = this.groupMessages.get(m.conversation);
        if (!g) this.groupMessages.set(m.conversation, (g = new Map()));
        const dup = m.seq > 0 && g.has(m.seq);
        if (m.seq > 0) g.set(m.seq, m);
        if (m.seq > (this.groupAcks.get(m.conversation) ?? 0)) this.groupAcks.set(m.conversation, m.seq);
        if (!dup) this.onMessage?.(m);
        continue;
      }
      this.pushed.push(m);
      if (m.seq === 0) { this.onMessage?.(m); continue; }
      // A message the device has already (pushed again after a reconnect that came before its ack): dropped.
      const dup = this.messages.has(m.seq);
      this.messages.set(m.seq, m);
      if (m.seq > this.highestPushed) this.highestPushed = m.seq;
      if (!dup) this.onMessage?.(m);
      if (this.opts.autoReceipts && m.receiptRequested && !m.outgoing && !dup) {
        void this.request("receipt", { conversation: m.conversation, seq: m.seq }).catch(() => {});
      }
    }
    if (this.opts.autoAck) this.scheduleAck();
  }

  private scheduleAck(): void {
    if (this.ackScheduled) return;
    this.ackScheduled = true;
    setImmediate(() => {
      this.ackScheduled = false;
      this.ackNow();
    });
  }

  /** Acknowledges everything received so far (autoAck does it after each tick of pushes). */
  ackNow(): void {
    if (this.isClosed) return;
    if (this.highestPushed > this.ackedSeq) {
      this.ackedSeq = this.highestPushed;
      this.ws.send(encodeFrame(0, "ack", { seq: this.ackedSeq, conversation: "" }));
    }
    for (const [group, seq] of this.groupAcks) {
      this.ws.send(encodeFrame(0, "ack", { seq, conversation: group }));
      this.groupAcks.delete(group);
    }
  }

  // ---- pushes ----

  private deliverPush(p: Push): void {
    const i = this.waiters.findIndex((w) => w.match(p));
    if (i >= 0) {
      const [w] = this.waiters.splice(i, 1);
      clearTimeout(w!.timer);
      w!.resolve(p);
    } else {
      this.inbox.push(p);
    }
  }

  /** The next push of this kind (matching `match`), from the inbox or as it arrives. */
  nextPush<K extends PayloadName>(name: K, match: (body: Payloads[K]) => boolean = () => true, timeoutMs = 5000): Promise<Payloads[K]> {
    const test = (p: Push) => p.name === name && match(p.body as Payloads[K]);
    const i = this.inbox.findIndex(test);
    if (i >= 0) return Promise.resolve(this.inbox.splice(i, 1)[0]!.body as Payloads[K]);
    if (this.isClosed) return Promise.reject(new Error(`closed (${this.closeInfo!.code} ${this.closeInfo!.reason}) before a ${name} push`));
    return new Promise((resolve, reject) => {
      const w: Waiter = {
        match: test,
        resolve: (p) => resolve(p.body as Payloads[K]),
        reject,
        timer: setTimeout(() => {
          this.waiters.splice(this.waiters.indexOf(w), 1);
          reject(new Error(`no ${name} push within ${timeoutMs} ms; inbox: ${this.inbox.map((x) => x.name).join(", ")}`));
        }, timeoutMs),
      };
      this.waiters.push(w);
    });
  }

  /** Asserts that no push of this kind (matching) arrives within `ms`. */
  async noPush<K extends PayloadName>(name: K, match: (body: Payloads[K]) => boolean = () => true, ms = 300): Promise<void> {
    let got: Payloads[K] | null = null;
    try { got = await this.nextPush(name, match, ms); } catch { return; }
    throw new Error(`unexpected ${name} push: ${JSON.stringify(got)}`);
  }

  /** The next pushed message (DIRECT or group) matching `match`. */
  async nextMessage(match: (m: Message) => boolean = () => true, timeoutMs = 5000): Promise<Message> {
    const push = await this.nextPush("messagePush", (b) => b.messages.some(match), timeoutMs);
    return push.messages.find(match)!;
  }

  /** Resolves when the login sync has pushed everything up to the newest seq. */
  syncComplete(timeoutMs = 30_000): Promise<SyncState> {
    if (this.syncDone) return Promise.resolve(this.syncDone);
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error("the sync did not complete")), timeoutMs);
      this.syncWaiters.push((s) => { clearTimeout(t); resolve(s); });
    });
  }

  // ---- ending ----

  private onClose(code: number, reason: string): void {
    if (this.closeInfo) return;
    this.closeInfo = { code, reason };
    if (this.heartbeatTimer) clearInterval(this.heartbeatTimer);
    for (const p of this.pending.values()) { clearTimeout(p.timer); p.reject(new Error(`connection closed (${code} ${reason})`)); }
    this.pending.clear();
    for (const w of this.waiters.splice(0)) { clearTimeout(w.timer); w.reject(new Error(`connection closed (${code} ${reason})`)); }
    for (const w of this.closeWaiters.splice(0)) w();
  }

  /** Resolves when the connection is closed (by either side). */
  closed(timeoutMs = 5000): Promise<{ code: number; reason: string }> {
    if (this.closeInfo) return Promise.resolve(this.closeInfo);
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error("the connection did not close")), timeoutMs);
      this.closeWaiters.push(() => { clearTimeout(t); resolve(this.closeInfo!); });
    });
  }

  /** A clean close. */
  close(): void {
    if (this.heartbeatTimer) clearInterval(this.heartbeatTimer);
    if (!this.isClosed) this.ws.close(1000);
  }

  /** Drops the connection without a close handshake (a phone losing its network). */
  drop(): void {
    if (this.heartbeatTimer) clearInterval(this.heartbeatTimer);
    this.ws.terminate();
  }
}
