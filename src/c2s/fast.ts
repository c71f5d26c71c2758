// FAST (XEP-0484): a token per account and user agent, requested inline in SASL2 and proven with an
// HT-SHA-256 mechanism on the next login, without the password. Tokens live in the shared token store
// (src/auth/tokens.ts); a password change revokes them (src/auth/accounts.ts).
//
// An HT-SHA-256-NONE token is kept only as a verifier (hashes of its two proofs). The proofs of a
// channel-bound token (-ENDP, -EXPR) include the TLS channel's binding data, so the server must be able to
// compute them: such a token is HMAC(server key, id) with a random id in the store and the server key
// derived from the server secret (s2s.dialbackSecret or the one generated in the data directory), so a
// copy of the database alone still logs nobody in.
import { createHmac, randomBytes, timingSafeEqual } from "node:crypto";
import { xml, type Element } from "../xml/element.js";
import { nodeprep } from "../jid/jid.js";
import { LoginThrottled } from "../auth/login.js";
import { fastTokenKey, htMatches, newHtSecret, type FastTokenRecord, type HtVerifier } from "../auth/tokens.js";
import { loadDialbackSecret } from "../s2s/dialback.js";
import type { Config } from "../config/config.js";
import { HT_BINDINGS, HT_SHA_256_NONE, htMechanisms, type TokenCheck } from "./sasl/ht.js";
import { SaslError, type ChannelBinding } from "./sasl/index.js";
import type { C2sContext } from "./context.js";
import type { AttemptStream } from "./sasl/attempt.js";

export const NS_FAST = "urn:xmpp:fast:0";
const MAX_COUNT = 2 ** 53 - 1;

/** The `<fast/>` inline feature: the HT mechanisms this connection can use (bound ones on TLS only). */
export function fastFeature(channel: ChannelBinding | null): Element {
  return xml("fast", { xmlns: NS_FAST }, ...htMechanisms(channel).map((m) => xml("mechanism", null, m)));
}

const serverKeys = new WeakMap<Config, Promise<Buffer>>();

/** The key channel-bound tokens are derived with, from the server secret (every node of a cluster shares it). */
function serverKey(config: Config): Promise<Buffer> {
  let key = serverKeys.get(config);
  if (!key) {
    key = loadDialbackSecret(config).then((secret) => createHmac("sha256", secret).update("hearth FAST channel-bound tokens").digest());
    key.catch(() => serverKeys.delete(config));
    serverKeys.set(config, key);
  }
  return key;
}

const boundToken = (key: Buffer, id: string) => createHmac("sha256", key).update(id).digest("base64url");
const htProof = (token: string, label: "Initiator" | "Responder", cb: Buffer) =>
  createHmac("sha256", Buffer.from(token, "utf8")).update(Buffer.concat([Buffer.from(label), cb])).digest();

/** A new channel-bound token: the secret for the client, the record for the store (its id only). */
async function newBoundSecret(config: Config, ttlMs: number, now: number): Promise<{ token: string; verifier: HtVerifier }> {
  const id = randomBytes(18).toString("base64url");
  return { token: boundToken(await serverKey(config), id), verifier: { initiator: "", responder: "", expires: now + ttlMs, id } };
}

/** The server's answer when `initiator` proves the bound token of `v` over `cb`, else null (constant time). */
async function boundMatch(config: Config, v: HtVerifier | undefined, initiator: Buffer, cb: Buffer, now = Date.now()): Promise<Buffer | null> {
  if (!v?.id || v.expires < now) return null;
  const token = boundToken(await serverKey(config), v.id);
  const expected = htProof(token, "Initiator", cb);
  if (expected.length !== initiator.length || !timingSafeEqual(expected, initiator)) return null;
  return htProof(token, "Responder", cb);
}

/** The FAST part of one SASL2 `<authenticate/>`: a token login, a token request, or both. */
export class FastLogin {
  /** The token this login proved, once it did. */
  private used: { owner: string; which: "current" | "previous" } | null = null;

  private constructor(
    private readonly ctx: C2sContext,
    private readonly stream: AttemptStream,
    private readonly agent: { id: string; software?: string; device?: string },
    /** The HT mechanism of a token login (null: a password login). */
    private readonly mechanism: string | null,
    /** `<request-token mechanism=…/>`: issue a token for that mechanism at success. */
    private readonly request: string | null,
    /** `<fast invalidate='true'/>`: the token proven here is revoked (logout). */
    private readonly invalidate: boolean,
    /** `<fast count=…/>`: must grow from one token login to the next (replay protection). */
    private readonly count: number | null,
  ) {}

  /** null when the `<authenticate/>` has nothing of FAST; a SaslError when its FAST part is unusable. */
  static fromAuthenticate(ctx: C2sContext, stream: AttemptStream, el: Element, agent: { id: string } | null): FastLogin | SaslError | null {
    const request = el.getChild("request-token", NS_FAST);
    const fast = el.getChild("fast", NS_FAST);
    const tokenLogin = HT_BINDINGS.has(el.attrs.mechanism ?? "");
    if (!request && !fast && !tokenLogin) return null;
    // XEP-0484 §3: a token belongs to one user agent, named by its id.
    if (!agent?.id) return new SaslError("malformed-request", "FAST needs a <user-agent/> with an id");
    if (request && !htMechanisms(stream.channel).includes(request.attrs.mechanism ?? "")) {
      return new SaslError("invalid-mechanism", `tokens are issued for ${htMechanisms(stream.channel).join(", ")} on this connection`);
    }
    let count: number | null = null;
    if (fast?.attrs.count !== undefined) {
      count = /^\d{1,16}$/.test(fast.attrs.count) ? Number(fast.attrs.count) : -1;
      if (count < 0 || count > MAX_COUNT) return new SaslError("malformed-request", "invalid FAST count");
    }
    const invalidate = fast?.attrs.invalidate === "true" || fast?.attrs.invalidate === "1";
    return new FastLogin(ctx, stream, agent, tokenLogin ? el.attrs.mechanism! : null, request?.attrs.mechanism ?? null, invalidate, count);
  }

  /** The check HT-SHA-256-NONE runs: the user agent's current or previous token, gated by the throttle. */
  tokenCheck(tried: (user: string) => void): TokenCheck {
    return async (username, initiator, cb) => {
      let user: string;
      try { user = nodeprep(username); } catch { return null; }
      tried(user);
      const owner = `${user}@${this.stream.host}`;
      try {
        await this.ctx.login.admit(this.stream.remoteAddress, owner);
      } catch (err) {
        if (err instanceof LoginThrottled) throw new SaslError("temporary-auth-failure", err.message);
        throw err;
      }
      const record = await this.ctx.login.tokens.get(owner, fastTokenKey(this.agent.id));
      if (record?.kind !== "fast" || record.mechanism !== this.mechanism) return null;
      if (this.count !== null && (record.count ?? -1) >= this.count) return null;
      if (record.mechanism !== HT_SHA_256_NONE) {
        // A channel-bound token: its proofs are computed over this connection's binding data.
        for (const which of ["current", "previous"] as const) {
          const responder = await boundMatch(this.ctx.config, record[which], initiator, cb);
          if (responder) { this.used = { owner, which }; return responder; }
        }
        return null;
      }
      const which = htMatches(record.current, initiator) ? "current" : htMatches(record.previous, initiator) ? "previous" : null;
      if (which === null) return null;
      this.used = { owner, which };
      return Buffer.from(record[which]!.responder, "base64");
    };
  }

  /** After a successful login: invalidation, rotation or a new token; resolves to the `<token/>` to send, if any. */
  async afterSuccess(user: string): Promise<Element | null> {
    const owner = `${user}@${this.stream.host}`;
    const key = fastTokenKey(this.agent.id);
    const tokens = this.ctx.login.tokens;
    const used = this.used;
    if (used && this.invalidate) {
      await tokens.revoke(owner, key);
      return null;
    }
    const now = Date.now();
    let issued: { token: string; verifier: HtVerifier } | null = null;
    const ttl = this.ctx.config.auth.fastTokenTtlSeconds * 1000;
    if (this.request) issued = this.request === HT_SHA_256_NONE ? newHtSecret(ttl, now) : await newBoundSecret(this.ctx.config, ttl, now);
    if (!issued && !used) return null;
    const mechanism = this.request ?? this.mechanism!;
    await tokens.update(owner, key, (cur) => {
      const prior = cur?.kind === "fast" ? cur : null;
      if (issued) {
        const next: FastTokenRecord = {
          kind: "fast", mechanism, software: this.agent.software, device: this.agent.device, created: now, current: issued.verifier,
        };
        // XEP-0484 §4 (rotation): the token just used stays valid until the new one is used once (when
        // both are for the same mechanism: a record proves with one).
        if (used && prior && prior.mechanism === mechanism) next.previous = prior[used.which];
        if (this.count !== null) next.count = this.count;
        return next;
      }
      if (!prior) return undefined;
      const next: FastTokenRecord = { ...prior };
      // The newest token was used: the one it replaced is of no further use.
      if (used!.which === "current") delete next.previous;
      if (this.count !== null) next.count = this.count;
      return next;
    });
    if (!issued) return null;
    return xml("token", { xmlns: NS_FAST, token: issued.token, expiry: new Date(issued.verifier.expires).toISOString() });
  }
}
