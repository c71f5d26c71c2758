// One benchmark client connection: plain TCP to a loopback XMPP server, with a
// promise-based setup phase (register / login) and a synchronous `hot` stanza
// callback for measured phases.
import { connect, type Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import { SCRAM_MECHS, ScramClient, type ScramKeyCache } from './scram.js';
import { StanzaFramer, attr, childText, elementName, escapeXml, innerText } from './xml-lite.js';
import { flushNow, queueOut, type Flushable } from './out-queue.js';

export interface Target {
  host: string;
  port: number;
  domain: string;
}

/** 'scram': SCRAM-SHA-256 if offered, else SCRAM-SHA-1. */
export type AuthMode = 'scram' | 'scram-sha-256' | 'scram-sha-1' | 'plain';

export interface LoginOptions {
  auth: AuthMode;
  cache: ScramKeyCache;
  timeoutMs: number;
  resource?: string;
}

export interface LoginInfo {
  jid: string;
  mechanism: string;
  /** connect → ping reply, ms */
  ms: number;
}

const NS_SASL = 'urn:ietf:params:xml:ns:xmpp-sasl';
const NS_STREAM = 'http://etherx.jabber.org/streams';

export function streamHeader(domain: string): string {
  return `<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='${NS_STREAM}' to='${domain}' version='1.0'>`;
}

export class XmppError extends Error {}

type Waiter = {
  pred: (s: string) => boolean;
  resolve: (s: string) => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout;
  what: string;
};

export class XmppClient implements Flushable {
  out = '';
  readonly sock: Socket;
  jid = '';
  closed = false;
  /** Set for measured phases: receives every stanza synchronously (the setup queue is bypassed). */
  hot: ((s: string) => void) | null = null;
  /** Called once if the connection goes away without the client closing it. */
  onLost: ((err: Error) => void) | null = null;
  /** close() or destroy() was called. */
  closing = false;
  private closeError: Error | null = null;
  private readonly framer: StanzaFramer;
  private queue: string[] = [];
  private waiter: Waiter | null = null;
  private connected: Promise<void>;
  private closedPromise: Promise<void>;
  /** when the TCP connect was started (login time is measured from here) */
  readonly t0 = performance.now();

  constructor(readonly target: Target, localAddress?: string) {
    this.framer = new StanzaFramer({
      stanza: (s) => this.deliver(s),
      open: (h) => this.deliver(h),
      close: () => this.fail(new XmppError('stream closed by server')),
    });
    const sock = connect({ host: target.host, port: target.port, localAddress, noDelay: true });
    this.sock = sock;
    sock.setEncoding('utf8');
    this.connected = new Promise((resolve, reject) => {
      sock.once('connect', () => resolve());
      sock.once('error', reject);
    });
    this.connected.catch(() => {});
    this.closedPromise = new Promise((resolve) => sock.once('close', () => resolve()));
    sock.on('data', (d: string) => {
      try {
        this.framer.push(d);
      } catch (e) {
        this.fail(e as Error);
        sock.destroy();
      }
    });
    sock.on('error', (e) => this.fail(e));
    sock.on('close', () => this.fail(new XmppError('connection closed')));
  }

  /** XEP-0198 (BENCH_SM=1): stanzas handled, for the <a/> that answers the server's <r/>. */
  private smHandled = -1;

  private deliver(s: string): void {
    if (this.smHandled >= 0) {
      if (s.startsWith('<r ')) {
        this.send(`<a xmlns='urn:xmpp:sm:3' h='${this.smHandled}'/>`);
        return;
      }
      if (s.startsWith('<a ') || s.startsWith('<enabled')) return;
      if (s.startsWith('<message') || s.startsWith('<presence') || s.startsWith('<iq')) this.smHandled = (this.smHandled + 1) % 2 ** 32;
    }
    if (s.startsWith('<iq') && this.answerIq(s)) return;
    if (this.hot !== null) {
      this.hot(s);
      return;
    }
    const w = this.waiter;
    if (w !== null) {
      // until() drains the queue before it installs a waiter, so the queue is empty here;
      // a stanza that does not match the waiter is not what the setup phase waits for: drop it
      this.check(w, s);
      return;
    }
    this.queue.push(s);
  }

  /** Answer IQ requests from the server (e.g. its keepalive pings) like a real client; true if s was one. */
  private answerIq(s: string): boolean {
    const type = attr(s, 'type');
    if (type !== 'get' && type !== 'set') return false;
    const id = escapeXml(attr(s, 'id') ?? '');
    const from = attr(s, 'from');
    const to = from === undefined ? '' : ` to='${escapeXml(from)}'`;
    if (type === 'get' && s.includes('urn:xmpp:ping')) this.send(`<iq type='result' id='${id}'${to}/>`);
    else
      this.send(
        `<iq type='error' id='${id}'${to}><error type='cancel'><service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>`,
      );
    return true;
  }

  /** Resolves the waiter with s if it matches, rejects it on a stream error. */
  private check(w: Waiter, s: string): void {
    if (s.startsWith('<stream:error')) this.settle(w, new XmppError(`stream error while waiting for ${w.what}: ${s.slice(0, 300)}`));
    else if (w.pred(s)) this.settle(w, s);
  }

  private settle(w: Waiter, r: string | Error): void {
    clearTimeout(w.timer);
    this.waiter = null;
    if (typeof r === 'string') w.resolve(r);
    else w.reject(r);
  }

  private fail(e: Error): void {
    if (!this.closeError) this.closeError = e;
    if (this.waiter) this.settle(this.waiter, this.closeError);
    if (!this.closed) {
      this.closed = true;
      if (!this.sock.destroyed) this.sock.destroy();
      const cb = this.onLost;
      if (cb && !this.closing) cb(e);
    }
  }

  /** Switch to the measured phase: every further stanza goes to fn (queued setup leftovers are dropped). */
  setHot(fn: ((s: string) => void) | null): void {
    this.queue = [];
    this.hot = fn;
  }

  send(data: string): void {
    queueOut(this, data);
  }

  /** Next stanza (or stream header) matching pred; non-matching ones are skipped. */
  until(pred: (s: string) => boolean, what: string, timeoutMs: number): Promise<string> {
    if (this.waiter) return Promise.reject(new Error('XmppClient: concurrent waits'));
    while (this.queue.length > 0) {
      const s = this.queue.shift()!;
      if (s.startsWith('<stream:error'))
        return Promise.reject(new XmppError(`stream error while waiting for ${what}: ${s.slice(0, 300)}`));
      if (pred(s)) return Promise.resolve(s);
    }
    if (this.closed) return Promise.reject(this.closeError ?? new XmppError('connection closed'));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        if (this.waiter === w) this.settle(w, new XmppError(`timeout after ${timeoutMs} ms waiting for ${what}`));
      }, timeoutMs);
      const w: Waiter = { pred, resolve, reject, timer, what };
      this.waiter = w;
    });
  }

  private async openStream(deadline: number): Promise<string> {
    this.send(streamHeader(this.target.domain));
    await this.until((s) => s.startsWith('<stream:stream'), 'stream header', remaining(deadline));
    return this.until((s) => s.startsWith('<stream:features'), 'stream features', remaining(deadline));
  }

  async waitConnected(timeoutMs: number): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        this.connected,
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new XmppError(`TCP connect timeout after ${timeoutMs} ms`)), timeoutMs);
        }),
      ]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** XEP-0077 in-band registration on this (unauthenticated) stream. */
  async register(user: string, password: string, timeoutMs: number): Promise<'created' | 'exists'> {
    const deadline = Date.now() + timeoutMs;
    await this.waitConnected(remaining(deadline));
    await this.openStream(deadline);
    this.send(
      `<iq type='set' id='r1'><query xmlns='jabber:iq:register'><username>${user}</username><password>${password}</password></query></iq>`,
    );
    const r = await this.until((s) => s.startsWith('<iq') && attr(s, 'id') === 'r1', 'registration reply', remaining(deadline));
    if (attr(r, 'type') === 'result') return 'created';
    if (r.includes('<conflict')) return 'exists';
    throw new XmppError(`registration of ${user} failed: ${r.slice(0, 300)}`);
  }

  /** Full login: stream, SASL, restart, bind, presence, ping to the domain (reply ends the login). */
  async login(user: string, password: string, o: LoginOptions): Promise<LoginInfo> {
    const deadline = Date.now() + o.timeoutMs;
    await this.waitConnected(remaining(deadline));
    const features = await this.openStream(deadline);
    const offered = mechanisms(features);
    const mech = chooseMechanism(o.auth, offered);
    if (!mech) throw new XmppError(`no usable SASL mechanism for --auth ${o.auth} (offered: ${offered.join(' ') || 'none'})`);
    const isSasl = (s: string) => {
      const n = elementName(s);
      return n === 'success' || n === 'failure' || n === 'challenge';
    };
    let outcome: string;
    if (mech === 'PLAIN') {
      const ir = Buffer.from(`\0${user}\0${password}`).toString('base64');
      this.send(`<auth xmlns='${NS_SASL}' mechanism='PLAIN'>${ir}</auth>`);
      outcome = await this.until(isSasl, 'SASL outcome', remaining(deadline));
    } else {
      const sc = new ScramClient(SCRAM_MECHS[mech]!, user, password, o.cache);
      this.send(`<auth xmlns='${NS_SASL}' mechanism='${mech}'>${sc.first()}</auth>`);
      const ch = await this.until(isSasl, 'SASL challenge', remaining(deadline));
      if (elementName(ch) !== 'challenge') throw new XmppError(`SASL ${mech} for ${user}: ${ch.slice(0, 300)}`);
      this.send(`<response xmlns='${NS_SASL}'>${await sc.final(innerText(ch))}</response>`);
      outcome = await this.until(isSasl, 'SASL outcome', remaining(deadline));
      if (elementName(outcome) === 'challenge') {
        // server-final sent as a challenge (RFC 6120 §6.4.6 allows it): verify, then empty response
        sc.verifyServerFinal(innerText(outcome));
        this.send(`<response xmlns='${NS_SASL}'/>`);
        outcome = await this.until(isSasl, 'SASL success', remaining(deadline));
        if (elementName(outcome) === 'success' && innerText(outcome) !== '') sc.verifyServerFinal(innerText(outcome));
      } else if (elementName(outcome) === 'success') {
        sc.verifyServerFinal(innerText(outcome));
      }
    }
    if (elementName(outcome) !== 'success') throw new XmppError(`SASL ${mech} for ${user} failed: ${outcome.slice(0, 300)}`);
    const features2 = await this.openStream(deadline);
    if (!features2.includes('urn:ietf:params:xml:ns:xmpp-bind'))
      throw new XmppError(`no resource binding offered after SASL: ${features2.slice(0, 300)}`);
    const res = o.resource ? `<resource>${o.resource}</resource>` : '';
    this.send(`<iq type='set' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>${res}</bind></iq>`);
    const b = await this.until((s) => s.startsWith('<iq') && attr(s, 'id') === 'b1', 'bind reply', remaining(deadline));
    if (attr(b, 'type') !== 'result') throw new XmppError(`bind failed for ${user}: ${b.slice(0, 300)}`);
    this.jid = childText(b, 'jid') ?? '';
    if (process.env.BENCH_SM === '1') {
      this.send(`<enable xmlns='urn:xmpp:sm:3' resume='true'/>`);
      await this.until((s) => s.startsWith('<enabled') || s.startsWith('<failed'), 'sm enabled', remaining(deadline));
      this.smHandled = 0;
    }
    const d = this.target.domain;
    this.send(`<presence/><iq type='get' to='${d}' id='p1'><ping xmlns='urn:xmpp:ping'/></iq>`);
    await this.until((s) => s.startsWith('<iq') && attr(s, 'id') === 'p1', 'ping reply', remaining(deadline));
    return { jid: this.jid, mechanism: mech, ms: performance.now() - this.t0 };
  }

  /** Graceful close: </stream:stream>, FIN, and a hard destroy after graceMs. */
  close(graceMs = 2000): Promise<void> {
    this.closing = true;
    if (!this.closed && !this.sock.destroyed) {
      this.hot = null;
      this.closeError ??= new XmppError('closed by client');
      this.send('</stream:stream>');
      flushNow(this);
      this.sock.end();
      const t = setTimeout(() => this.sock.destroy(), graceMs);
      t.unref();
    }
    return this.closedPromise;
  }

  destroy(): void {
    this.closing = true;
    this.closeError ??= new XmppError('closed by client');
    this.sock.destroy();
  }
}

function remaining(deadline: number): number {
  return Math.max(1, deadline - Date.now());
}

export function mechanisms(features: string): string[] {
  const out: string[] = [];
  const re = /<mechanism>([^<]*)<\/mechanism>/g;
  let m: RegExpExecArray | null;
  while ((m = re.exec(features)) !== null) out.push(m[1]!.trim());
  return out;
}

export function chooseMechanism(auth: AuthMode, offered: string[]): string | null {
  const has = (m: string) => offered.includes(m);
  switch (auth) {
    case 'scram':
      return has('SCRAM-SHA-256') ? 'SCRAM-SHA-256' : has('SCRAM-SHA-1') ? 'SCRAM-SHA-1' : null;
    case 'scram-sha-256':
      return has('SCRAM-SHA-256') ? 'SCRAM-SHA-256' : null;
    case 'scram-sha-1':
      return has('SCRAM-SHA-1') ? 'SCRAM-SHA-1' : null;
    case 'plain':
      return has('PLAIN') ? 'PLAIN' : null;
  }
}
