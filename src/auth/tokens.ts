// One store for every login token an account holds: the mobile protocol's device tokens and the FAST tokens
// of XMPP clients (XEP-0484). Listing, revoking and the revocation at a password change go through here,
// whatever protocol issued the token. Nothing here is a usable credential when read from the database:
// a device token is kept as its SHA-256, a FAST token as the SHA-256 of what the client proves with.
import { createHash, createHmac, randomBytes, timingSafeEqual } from "node:crypto";
import type { MapStore, Store } from "../storage/types.js";

/** A device token of the mobile protocol, keyed by the SHA-256 of the token. */
export interface DeviceTokenRecord {
  kind: "device";
  device: string;
  platform: number;
  created: number;
  expires: number;
}

/** The verifier of one HT-SHA-256-NONE secret (draft-schmaus-kitten-sasl-ht). */
export interface HtVerifier {
  /** hex SHA-256 of HMAC-SHA-256(token, "Initiator"): what the client sends, hashed. */
  initiator: string;
  /** base64 HMAC-SHA-256(token, "Responder"): the server's proof in <additional-data/>. */
  responder: string;
  expires: number;
  /**
   * Channel-bound tokens (HT-SHA-256-ENDP/-EXPR) only, whose proofs depend on the TLS channel: the random
   * id the token is derived from with a server key (src/c2s/fast.ts); initiator and responder are empty.
   */
  id?: string;
}

/** The FAST token of one user agent (XEP-0484), keyed by the SHA-256 of the user-agent id. */
export interface FastTokenRecord {
  kind: "fast";
  mechanism: string;
  /** The user-agent's software and device names, as the client gave them (for listing). */
  software?: string;
  device?: string;
  created: number;
  /** The newest token. */
  current: HtVerifier;
  /** XEP-0484 §4: the token it replaced stays valid until the new one is used once. */
  previous?: HtVerifier;
  /** The highest `count` a token login of this user agent gave (replay protection). */
  count?: number;
}

export type TokenRecord = DeviceTokenRecord | FastTokenRecord;

export interface ListedToken { key: string; record: TokenRecord }

const sha256hex = (data: string | Buffer): string => createHash("sha256").update(data).digest("hex");

/** The key of a mobile device token. */
export function deviceTokenKey(token: string): string {
  return `device:${sha256hex(token)}`;
}

/** The key of the FAST token of one user agent (XEP-0388 `<user-agent id=…>`). */
export function fastTokenKey(userAgentId: string): string {
  return `fast:${sha256hex(userAgentId)}`;
}

/** A new FAST secret and its verifier; the secret goes to the client once and is never stored. */
export function newHtSecret(ttlMs: number, now = Date.now()): { token: string; verifier: HtVerifier } {
  const token = randomBytes(32).toString("base64url");
  const key = Buffer.from(token, "utf8");
  return {
    token,
    verifier: {
      initiator: sha256hex(createHmac("sha256", key).update("Initiator").digest()),
      responder: createHmac("sha256", key).update("Responder").digest("base64"),
      expires: now + ttlMs,
    },
  };
}

/** Whether `initiator` (the client's HMAC) proves the verifier's token, in constant time. */
export function htMatches(v: HtVerifier | undefined, initiator: Buffer, now = Date.now()): boolean {
  if (!v || v.expires < now) return false;
  const expected = Buffer.from(v.initiator, "hex");
  const actual = createHash("sha256").update(initiator).digest();
  return expected.length === actual.length && timingSafeEqual(expected, actual);
}

export class TokenStore {
  private readonly map: MapStore;

  constructor(store: Store) {
    this.map = store.map("auth:tokens");
  }

  async get(owner: string, key: string): Promise<TokenRecord | null> {
    const raw = await this.map.get(owner, key);
    if (raw === null) return null;
    try { return JSON.parse(raw) as TokenRecord; } catch { return null; }
  }

  put(owner: string, key: string, record: TokenRecord): Promise<void> {
    return this.map.set(owner, key, JSON.stringify(record));
  }

  /** Atomic read-modify-write of one token (rotation must not lose a concurrent login's change). */
  async update(owner: string, key: string, fn: (current: TokenRecord | null) => TokenRecord | null | undefined): Promise<void> {
    await this.map.update(owner, key, (raw) => {
      let cur: TokenRecord | null = null;
      if (raw !== null) { try { cur = JSON.parse(raw) as TokenRecord; } catch { cur = null; } }
      const next = fn(cur);
      return next === undefined ? undefined : next === null ? null : JSON.stringify(next);
    });
  }

  /** false when there was no such token. */
  revoke(owner: string, key: string): Promise<boolean> {
    return this.map.delete(owner, key);
  }

  /** Every token the account holds, of every protocol. */
  async list(owner: string): Promise<ListedToken[]> {
    const out: ListedToken[] = [];
    for (const [key, raw] of await this.map.list(owner)) {
      try { out.push({ key, record: JSON.parse(raw) as TokenRecord }); } catch { /* a damaged row is no token */ }
    }
    return out;
  }

  /** Revokes every token of the account (password change, account removal); resolves to how many. */
  async revokeAll(owner: string): Promise<number> {
    let n = 0;
    for (const key of (await this.map.list(owner)).keys()) if (await this.map.delete(owner, key)) n++;
    return n;
  }
}
