// SCRAM (RFC 5802 / RFC 7677) primitives with node:crypto: the client side used by
// the load generator, with a key cache so that PBKDF2 runs once per
// (user, password, salt, iterations), and the few server-side pieces the fake
// server needs.
import { createHash, createHmac, pbkdf2, randomBytes, timingSafeEqual } from 'node:crypto';

export type ScramHash = 'sha1' | 'sha256';

export const SCRAM_MECHS: Record<string, ScramHash> = {
  'SCRAM-SHA-256': 'sha256',
  'SCRAM-SHA-1': 'sha1',
};

export interface ScramKeys {
  clientKey: Buffer;
  storedKey: Buffer;
  serverKey: Buffer;
}

const KEYLEN: Record<ScramHash, number> = { sha1: 20, sha256: 32 };

export function hmac(hash: ScramHash, key: Buffer, data: string | Buffer): Buffer {
  return createHmac(hash, key).update(data).digest();
}

export function digest(hash: ScramHash, data: Buffer): Buffer {
  return createHash(hash).update(data).digest();
}

export function xor(a: Buffer, b: Buffer): Buffer {
  const out = Buffer.allocUnsafe(a.length);
  for (let i = 0; i < a.length; i++) out[i] = a[i]! ^ b[i]!;
  return out;
}

/** Salted password → client/stored/server keys (one PBKDF2 run, in the libuv thread pool). */
export function deriveKeys(hash: ScramHash, password: string, salt: Buffer, iterations: number): Promise<ScramKeys> {
  return new Promise((resolve, reject) => {
    pbkdf2(password, salt, iterations, KEYLEN[hash], hash, (err, salted) => {
      if (err) return reject(err);
      const clientKey = hmac(hash, salted, 'Client Key');
      resolve({ clientKey, storedKey: digest(hash, clientKey), serverKey: hmac(hash, salted, 'Server Key') });
    });
  });
}

/** Client-side key cache: one derivation per (mechanism, user, password, salt, iterations) per run. */
export class ScramKeyCache {
  private readonly map = new Map<string, Promise<ScramKeys>>();
  /** Number of PBKDF2 derivations started so far (compare before/after a measured window). */
  derivations = 0;

  get(hash: ScramHash, user: string, password: string, salt: Buffer, iterations: number): Promise<ScramKeys> {
    const key = `${hash}\0${user}\0${password}\0${salt.toString('base64')}\0${iterations}`;
    let p = this.map.get(key);
    if (!p) {
      this.derivations++;
      p = deriveKeys(hash, password, salt, iterations);
      p.catch(() => this.map.delete(key));
      this.map.set(key, p);
    }
    return p;
  }

  get size(): number {
    return this.map.size;
  }
}

export function saslName(s: string): string {
  return s.replace(/=/g, '=3D').replace(/,/g, '=2C');
}

/** Parse "k=v,k=v" SCRAM attributes (values may contain '='). */
export function parseScramAttrs(s: string): Map<string, string> {
  const m = new Map<string, string>();
  for (const part of s.split(',')) {
    if (part.length >= 2 && part[1] === '=') m.set(part[0]!, part.slice(2));
  }
  return m;
}

const GS2_HEADER = 'n,,';
const GS2_HEADER_B64 = Buffer.from(GS2_HEADER).toString('base64'); // "biws"
const MAX_ITERATIONS = 10_000_000;

/** One client-side SCRAM exchange (no channel binding). */
export class ScramClient {
  private readonly cnonce: string;
  private readonly clientFirstBare: string;
  private authMessage = '';
  private keys: ScramKeys | null = null;

  constructor(
    readonly hash: ScramHash,
    private readonly user: string,
    private readonly password: string,
    private readonly cache: ScramKeyCache,
    /** fixed client nonce (tests only) */
    cnonce?: string,
  ) {
    this.cnonce = cnonce ?? randomBytes(18).toString('base64');
    this.clientFirstBare = `n=${saslName(user)},r=${this.cnonce}`;
  }

  /** Initial response (base64) for <auth/>. */
  first(): string {
    return Buffer.from(GS2_HEADER + this.clientFirstBare).toString('base64');
  }

  /** Answer to the server-first-message (both base64). */
  async final(challengeB64: string): Promise<string> {
    const serverFirst = Buffer.from(challengeB64, 'base64').toString('utf8');
    const a = parseScramAttrs(serverFirst);
    if (a.has('m')) throw new Error('SCRAM: unsupported mandatory extension');
    const nonce = a.get('r');
    const saltB64 = a.get('s');
    const iterations = Number(a.get('i'));
    if (!nonce || !nonce.startsWith(this.cnonce) || nonce.length === this.cnonce.length)
      throw new Error(`SCRAM: bad server nonce in "${serverFirst}"`);
    if (!saltB64) throw new Error('SCRAM: no salt');
    if (!Number.isInteger(iterations) || iterations < 1 || iterations > MAX_ITERATIONS)
      throw new Error(`SCRAM: bad iteration count ${a.get('i')}`);
    this.keys = await this.cache.get(this.hash, this.user, this.password, Buffer.from(saltB64, 'base64'), iterations);
    const withoutProof = `c=${GS2_HEADER_B64},r=${nonce}`;
    this.authMessage = `${this.clientFirstBare},${serverFirst},${withoutProof}`;
    const signature = hmac(this.hash, this.keys.storedKey, this.authMessage);
    const proof = xor(this.keys.clientKey, signature).toString('base64');
    return Buffer.from(`${withoutProof},p=${proof}`).toString('base64');
  }

  /** Check the server-final-message (base64 "v=..."); throws unless the server proved it knows the keys. */
  verifyServerFinal(dataB64: string): void {
    if (!this.keys) throw new Error('SCRAM: server-final before server-first');
    const a = parseScramAttrs(Buffer.from(dataB64, 'base64').toString('utf8'));
    const e = a.get('e');
    if (e) throw new Error(`SCRAM: server error ${e}`);
    const v = a.get('v');
    if (!v) throw new Error('SCRAM: no server signature (v=)');
    const expected = hmac(this.hash, this.keys.serverKey, this.authMessage);
    const got = Buffer.from(v, 'base64');
    if (got.length !== expected.length || !timingSafeEqual(got, expected))
      throw new Error('SCRAM: server signature mismatch');
  }
}
