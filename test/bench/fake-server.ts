// A minimal, in-memory, loopback-only XMPP c2s server: just enough protocol to
// exercise the load generator end to end and to measure its own ceiling. It is
// NOT hearth and not a real server: no TLS, no rosters, no storage, no limits.
//
//   stream + features, XEP-0077 registration (SCRAM keys kept in memory),
//   SASL SCRAM-SHA-256 / SCRAM-SHA-1 (server side), resource binding, presence
//   (ignored), IQ ping to the domain, <message/> routing by bare JID to the
//   last bound session (bounced with service-unavailable if there is none).
//
// In-process: `startFakeServer({ domain })` (bench.js --fake); standalone:
//   node dist/test/bench/fake-server.js [--port 15998] [--domain bench.localhost] [--mechs SCRAM-SHA-1,...]
import { createServer, isIP, type Server, type Socket } from 'node:net';
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { pathToFileURL } from 'node:url';
import { StanzaFramer, attr, childText, elementName, innerText } from './xml-lite.js';
import { flushNow, queueOut, type Flushable } from './out-queue.js';
import { SCRAM_MECHS, deriveKeys, digest, hmac, parseScramAttrs, xor, type ScramHash, type ScramKeys } from './scram.js';

export interface FakeServerOptions {
  host?: string;
  port?: number;
  domain: string;
  /** SASL mechanisms to offer, in order (default SCRAM-SHA-256, SCRAM-SHA-1) */
  mechanisms?: string[];
  iterations?: number;
}

interface StoredCreds {
  salt: Buffer;
  iterations: number;
  keys: Record<ScramHash, ScramKeys>;
}

const NS_STREAM = 'http://etherx.jabber.org/streams';
const NS_SASL = 'urn:ietf:params:xml:ns:xmpp-sasl';
const NS_STANZAS = 'urn:ietf:params:xml:ns:xmpp-stanzas';

export function isLoopback(addr: string | undefined): boolean {
  if (!addr) return false;
  if (addr.startsWith('::ffff:')) addr = addr.slice(7);
  return addr === '::1' || (isIP(addr) === 4 && addr.startsWith('127.'));
}

export class FakeServer {
  private readonly server: Server;
  readonly accounts = new Map<string, StoredCreds | 'pending'>();
  readonly sessions = new Map<string, FakeConn>();
  readonly conns = new Set<FakeConn>();
  readonly mechanisms: string[];
  readonly iterations: number;
  routed = 0;
  port = 0;

  constructor(readonly opts: FakeServerOptions) {
    this.mechanisms = opts.mechanisms ?? ['SCRAM-SHA-256', 'SCRAM-SHA-1'];
    for (const m of this.mechanisms) if (!SCRAM_MECHS[m]) throw new Error(`fake server: unsupported mechanism ${m}`);
    this.iterations = opts.iterations ?? 4096;
    this.server = createServer((sock) => {
      if (!isLoopback(sock.remoteAddress)) {
        sock.destroy();
        return;
      }
      this.conns.add(new FakeConn(this, sock));
    });
  }

  listen(): Promise<number> {
    const host = this.opts.host ?? '127.0.0.1';
    if (!isLoopback(host)) return Promise.reject(new Error(`fake server: refusing to listen on non-loopback ${host}`));
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(this.opts.port ?? 0, host, 4096, () => {
        const a = this.server.address();
        this.port = typeof a === 'object' && a ? a.port : 0;
        resolve(this.port);
      });
    });
  }

  async register(user: string, password: string): Promise<'created' | 'exists'> {
    if (this.accounts.has(user)) return 'exists';
    this.accounts.set(user, 'pending');
    const salt = randomBytes(16);
    const it = this.iterations;
    try {
      const [sha256, sha1] = await Promise.all([deriveKeys('sha256', password, salt, it), deriveKeys('sha1', password, salt, it)]);
      this.accounts.set(user, { salt, iterations: it, keys: { sha256, sha1 } });
      return 'created';
    } catch (e) {
      this.accounts.delete(user);
      throw e;
    }
  }

  close(): Promise<void> {
    for (const c of this.conns) c.sock.destroy();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

type ScramState = { hash: ScramHash; user: string; bare: string; serverFirst: string; nonce: string; gs2: string };

class FakeConn implements Flushable {
  out = '';
  private readonly framer: StanzaFramer;
  private authed = false;
  private user = '';
  jid = '';
  private bare = '';
  private scram: ScramState | null = null;
  private closed = false;

  constructor(private readonly srv: FakeServer, readonly sock: Socket) {
    sock.setNoDelay(true);
    sock.setEncoding('utf8');
    this.framer = new StanzaFramer({
      open: (h) => this.onOpen(h),
      stanza: (s) => this.onStanza(s),
      close: () => this.end(),
    });
    sock.on('data', (d: string) => {
      try {
        this.framer.push(d);
      } catch (e) {
        this.streamError('not-well-formed', (e as Error).message);
      }
    });
    sock.on('error', () => {});
    sock.on('close', () => this.cleanup());
  }

  private send(s: string): void {
    queueOut(this, s);
  }

  private cleanup(): void {
    this.closed = true;
    if (this.bare && this.srv.sessions.get(this.bare) === this) this.srv.sessions.delete(this.bare);
    this.srv.conns.delete(this);
  }

  private end(): void {
    if (this.closed) return;
    this.send('</stream:stream>');
    flushNow(this);
    this.sock.end();
    this.cleanup();
  }

  private streamError(cond: string, text?: string): void {
    if (this.closed) return;
    const t = text ? `<text xmlns='urn:ietf:params:xml:ns:xmpp-streams'>${text.replace(/[<&]/g, '')}</text>` : '';
    this.send(`<stream:error><${cond} xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>${t}</stream:error>`);
    this.end();
  }

  private onOpen(header: string): void {
    const d = this.srv.opts.domain;
    this.send(
      `<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='${NS_STREAM}' id='${randomBytes(6).toString('hex')}' from='${d}' version='1.0'>`,
    );
    if (attr(header, 'to') !== d) return this.streamError('host-unknown');
    if (!this.authed) {
      const mechs = this.srv.mechanisms.map((m) => `<mechanism>${m}</mechanism>`).join('');
      this.send(
        `<stream:features><mechanisms xmlns='${NS_SASL}'>${mechs}</mechanisms><register xmlns='http://jabber.org/features/iq-register'/></stream:features>`,
      );
    } else {
      this.send(`<stream:features><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></stream:features>`);
    }
  }

  private onStanza(s: string): void {
    if (this.jid !== '') {
      // bound session: the hot path
      if (s.startsWith('<message')) return this.route(s);
      if (s.startsWith('<presence')) return;
      if (s.startsWith('<iq')) return this.iq(s);
      return this.streamError('unsupported-stanza-type');
    }
    const name = elementName(s);
    if (!this.authed) {
      if (name === 'auth') return this.saslAuth(s);
      if (name === 'response') return void this.saslResponse(s).catch((e: Error) => this.streamError('internal-server-error', e.message));
      if (name === 'iq') return void this.preAuthIq(s).catch((e: Error) => this.streamError('internal-server-error', e.message));
      return this.streamError('not-authorized');
    }
    if (name === 'iq' && s.includes('urn:ietf:params:xml:ns:xmpp-bind')) return this.bind(s);
    return this.streamError('not-authorized');
  }

  private saslFailure(cond: string): void {
    this.scram = null;
    this.send(`<failure xmlns='${NS_SASL}'><${cond}/></failure>`);
  }

  private saslAuth(s: string): void {
    const mech = attr(s, 'mechanism') ?? '';
    const hash = SCRAM_MECHS[mech];
    if (!hash || !this.srv.mechanisms.includes(mech)) return this.saslFailure('invalid-mechanism');
    const msg = Buffer.from(innerText(s), 'base64').toString('utf8');
    const c1 = msg.indexOf(',');
    const c2 = c1 === -1 ? -1 : msg.indexOf(',', c1 + 1);
    if (c2 === -1 || msg[0] === 'p') return this.saslFailure('malformed-request');
    const gs2 = msg.slice(0, c2 + 1);
    const bare = msg.slice(c2 + 1);
    const a = parseScramAttrs(bare);
    const user = (a.get('n') ?? '').replace(/=2C/g, ',').replace(/=3D/g, '=');
    const cnonce = a.get('r');
    const creds = this.srv.accounts.get(user);
    if (!cnonce || !user) return this.saslFailure('malformed-request');
    if (!creds || creds === 'pending') return this.saslFailure('not-authorized');
    const nonce = cnonce + randomBytes(18).toString('base64');
    const serverFirst = `r=${nonce},s=${creds.salt.toString('base64')},i=${creds.iterations}`;
    this.scram = { hash, user, bare, serverFirst, nonce, gs2 };
    this.send(`<challenge xmlns='${NS_SASL}'>${Buffer.from(serverFirst).toString('base64')}</challenge>`);
  }

  private async saslResponse(s: string): Promise<void> {
    const st = this.scram;
    if (!st) return this.saslFailure('malformed-request');
    const creds = this.srv.accounts.get(st.user);
    if (!creds || creds === 'pending') return this.saslFailure('not-authorized');
    const msg = Buffer.from(innerText(s), 'base64').toString('utf8');
    const pIdx = msg.lastIndexOf(',p=');
    if (pIdx === -1) return this.saslFailure('malformed-request');
    const withoutProof = msg.slice(0, pIdx);
    const a = parseScramAttrs(withoutProof);
    if (a.get('c') !== Buffer.from(st.gs2).toString('base64') || a.get('r') !== st.nonce) return this.saslFailure('not-authorized');
    const proof = Buffer.from(msg.slice(pIdx + 3), 'base64');
    const keys = creds.keys[st.hash];
    const authMessage = `${st.bare},${st.serverFirst},${withoutProof}`;
    const sig = hmac(st.hash, keys.storedKey, authMessage);
    if (proof.length !== sig.length) return this.saslFailure('not-authorized');
    const stored = digest(st.hash, xor(proof, sig));
    if (!timingSafeEqual(stored, keys.storedKey)) return this.saslFailure('not-authorized');
    const v = hmac(st.hash, keys.serverKey, authMessage).toString('base64');
    this.scram = null;
    this.authed = true;
    this.user = st.user;
    this.send(`<success xmlns='${NS_SASL}'>${Buffer.from(`v=${v}`).toString('base64')}</success>`);
  }

  private async preAuthIq(s: string): Promise<void> {
    const id = attr(s, 'id') ?? '';
    if (attr(s, 'type') === 'set' && s.includes('jabber:iq:register')) {
      const user = childText(s, 'username') ?? '';
      const password = childText(s, 'password') ?? '';
      if (!/^[a-z0-9._-]{1,64}$/i.test(user) || password === '') return this.iqError(id, 'modify', 'not-acceptable');
      const r = await this.srv.register(user.toLowerCase(), password);
      if (r === 'exists') return this.iqError(id, 'cancel', 'conflict');
      this.send(`<iq type='result' id='${id}'/>`);
      return;
    }
    this.iqError(id, 'cancel', 'service-unavailable');
  }

  private iqError(id: string, type: string, cond: string, to?: string): void {
    const t = to ? ` to='${to}'` : '';
    this.send(
      `<iq type='error' id='${id}'${t} from='${this.srv.opts.domain}'><error type='${type}'><${cond} xmlns='${NS_STANZAS}'/></error></iq>`,
    );
  }

  private bind(s: string): void {
    const id = attr(s, 'id') ?? '';
    const res = childText(s, 'resource') || `bench-${randomBytes(4).toString('hex')}`;
    this.bare = `${this.user}@${this.srv.opts.domain}`;
    this.jid = `${this.bare}/${res}`;
    this.srv.sessions.set(this.bare, this);
    this.send(`<iq type='result' id='${id}'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><jid>${this.jid}</jid></bind></iq>`);
  }

  private iq(s: string): void {
    const type = attr(s, 'type');
    if (type !== 'get' && type !== 'set') return; // results / errors: nothing to do
    const id = attr(s, 'id') ?? '';
    const to = attr(s, 'to');
    const d = this.srv.opts.domain;
    if ((to === undefined || to === d || to === this.bare) && type === 'get' && s.includes('urn:xmpp:ping')) {
      this.send(`<iq type='result' id='${id}' from='${to ?? d}' to='${this.jid}'/>`);
      return;
    }
    this.iqError(id, 'cancel', 'service-unavailable', this.jid);
  }

  private route(s: string): void {
    const to = attr(s, 'to');
    if (to === undefined) return;
    const slash = to.indexOf('/');
    const bare = slash === -1 ? to : to.slice(0, slash);
    const dest = this.srv.sessions.get(bare);
    if (dest) {
      this.srv.routed++;
      queueOut(dest, `<message from='${this.jid}'${s.slice(8)}`);
      return;
    }
    if (attr(s, 'type') === 'error') return;
    const id = attr(s, 'id');
    this.send(
      `<message from='${to}' to='${this.jid}' type='error'${id === undefined ? '' : ` id='${id}'`}><error type='cancel'><service-unavailable xmlns='${NS_STANZAS}'/></error></message>`,
    );
  }
}

export async function startFakeServer(opts: FakeServerOptions): Promise<FakeServer> {
  const s = new FakeServer(opts);
  await s.listen();
  return s;
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const opt = (k: string) => {
    const i = args.indexOf(`--${k}`);
    return i === -1 ? undefined : args[i + 1];
  };
  const srv = await startFakeServer({
    host: opt('host') ?? '127.0.0.1',
    port: Number(opt('port') ?? 15998),
    domain: opt('domain') ?? 'bench.localhost',
    mechanisms: opt('mechs')?.split(','),
    iterations: opt('iterations') ? Number(opt('iterations')) : undefined,
  });
  process.stdout.write(`fake-server: listening on 127.0.0.1:${srv.port} (${srv.opts.domain}), pid ${process.pid}\n`);
  for (const sig of ['SIGINT', 'SIGTERM'] as const) process.once(sig, () => void srv.close().finally(() => process.exit(0)));
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((e: Error) => {
    process.stderr.write(`fake-server: ${e.message}\n`);
    process.exit(1);
  });
}
