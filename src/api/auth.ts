// Who calls the server API: an API key from the config (api.keys), sent as `Authorization: Bearer KEY`,
// or a short-lived access token the OAuth2 client-credentials grant issued for one (RFC 6749 §4.4).
// Keys are kept as their SHA-256 only and compared in constant time; nothing here logs a key or a token.
// An access token is stateless (`hat1.<payload>.<HMAC>`, keyed by the key's hash): every node with the same
// config accepts it, and taking the key out of the config ends its tokens.
import { createHash, createHmac, timingSafeEqual } from "node:crypto";
import type { IncomingMessage } from "node:http";
import { API_SCOPES } from "../config/schema.js";
import { ApiError } from "./http.js";

export type Scope = (typeof API_SCOPES)[number];

export interface Caller { key: string; scopes: ReadonlySet<Scope> }

interface Key { name: string; hash: Buffer; scopes: Set<Scope> }

const sha256 = (s: string | Buffer): Buffer => createHash("sha256").update(s).digest();
const TOKEN_PREFIX = "hat1.";

export class ApiAuth {
  private readonly keys: Key[];
  private readonly buckets = new Map<string, { tokens: number; at: number }>();

  constructor(
    cfg: { keys: Record<string, string>; scopes: Record<string, string> },
    private readonly limits: { requestsPerSecond: number; requestBurst: number; tokenTtlSeconds: number },
  ) {
    for (const name of Object.keys(cfg.scopes)) {
      if (cfg.keys[name] === undefined) throw new Error(`api.scopes.${name}: no key of that name in api.keys`);
    }
    this.keys = Object.entries(cfg.keys).map(([name, spec]) => ({
      name,
      hash: spec.startsWith("sha256:") ? Buffer.from(spec.slice(7), "hex") : sha256(spec),
      scopes: new Set((cfg.scopes[name]?.split(",") ?? [...API_SCOPES]) as Scope[]),
    }));
  }

  get enabled(): boolean { return this.keys.length > 0; }

  /** The key whose secret this is; every key is compared, so the time taken tells nothing. */
  private byKey(secret: string): Key | null {
    const h = sha256(secret);
    let found: Key | null = null;
    for (const k of this.keys) if (timingSafeEqual(k.hash, h) && found === null) found = k;
    return found;
  }

  /** The caller of a request (401 without a valid key or token). */
  authenticate(req: IncomingMessage): Caller {
    const header = req.headers.authorization ?? "";
    const m = /^Bearer\s+(\S+)\s*$/i.exec(header);
    if (!m) throw unauthorized("an API key is required: Authorization: Bearer <key>");
    const secret = m[1]!;
    if (secret.startsWith(TOKEN_PREFIX)) return this.verifyToken(secret);
    const key = this.byKey(secret);
    if (!key) throw unauthorized("the API key is not valid");
    return { key: key.name, scopes: key.scopes };
  }

  /** Token bucket per key (429 with Retry-After in whole seconds). */
  admit(caller: Caller, now = Date.now()): void {
    const rate = this.limits.requestsPerSecond;
    if (rate <= 0) return;
    const burst = this.limits.requestBurst;
    let b = this.buckets.get(caller.key);
    if (!b) this.buckets.set(caller.key, (b = { tokens: burst, at: now }));
    b.tokens = Math.min(burst, b.tokens + ((now - b.at) / 1000) * rate);
    b.at = now;
    if (b.tokens < 1) {
      const wait = Math.max(1, Math.ceil((1 - b.tokens) / rate));
      throw new ApiError("rate-limited", `too many requests for key ${caller.key}; retry after ${wait} s`, { "retry-after": String(wait) });
    }
    b.tokens -= 1;
  }

  requireScope(caller: Caller, scope: Scope): void {
    if (!caller.scopes.has(scope)) throw new ApiError("forbidden", `the key ${caller.key} lacks the scope "${scope}"`);
  }

  // ---- OAuth2 client credentials (RFC 6749 §4.4) ----

  get tokensEnabled(): boolean { return this.limits.tokenTtlSeconds > 0 && this.enabled; }

  /**
   * The token response for a client that authenticated with its key as the client secret; `scope` (space
   * separated, §3.3) narrows the key's scopes. Throws an OAuthError (RFC 6749 §5.2) otherwise.
   */
  issueToken(clientId: string, clientSecret: string, scope: string | undefined, now = Date.now()): { access_token: string; token_type: "Bearer"; expires_in: number; scope: string } {
    const key = this.byKey(clientSecret);
    if (!key || key.name !== clientId) throw new OAuthError(401, "invalid_client", "unknown client or wrong secret");
    let scopes = [...key.scopes];
    if (scope !== undefined && scope.trim() !== "") {
      const asked = scope.trim().split(/\s+/);
      const unknown = asked.filter((s) => !key.scopes.has(s as Scope));
      if (unknown.length) throw new OAuthError(400, "invalid_scope", `not granted to this client: ${unknown.join(" ")}`);
      scopes = [...new Set(asked)] as Scope[];
    }
    const ttl = this.limits.tokenTtlSeconds;
    const payload = Buffer.from(JSON.stringify({ k: key.name, e: now + ttl * 1000, s: scopes })).toString("base64url");
    const mac = createHmac("sha256", key.hash).update(payload).digest("base64url");
    return { access_token: `${TOKEN_PREFIX}${payload}.${mac}`, token_type: "Bearer", expires_in: ttl, scope: scopes.join(" ") };
  }

  private verifyToken(token: string, now = Date.now()): Caller {
    const [payload, mac] = token.slice(TOKEN_PREFIX.length).split(".");
    let claims: { k?: unknown; e?: unknown; s?: unknown };
    try {
      claims = JSON.parse(Buffer.from(payload ?? "", "base64url").toString("utf8")) as typeof claims;
    } catch {
      throw unauthorized("the access token is not valid");
    }
    const key = this.keys.find((k) => k.name === claims.k);
    if (!key || mac === undefined || !this.tokensEnabled) throw unauthorized("the access token is not valid");
    const expected = createHmac("sha256", key.hash).update(payload!).digest();
    const given = Buffer.from(mac, "base64url");
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) throw unauthorized("the access token is not valid");
    if (typeof claims.e !== "number" || claims.e < now) throw unauthorized("the access token has expired");
    const scopes = Array.isArray(claims.s) ? claims.s.filter((s): s is Scope => key.scopes.has(s as Scope)) : [];
    return { key: key.name, scopes: new Set(scopes) };
  }
}

/** RFC 6749 §5.2 error response. */
export class OAuthError extends Error {
  constructor(readonly status: number, readonly error: string, readonly description: string) {
    super(description);
  }
}

function unauthorized(message: string): ApiError {
  return new ApiError("unauthorized", message, { "www-authenticate": 'Bearer realm="hearth-api"' });
}
