// FAST (XEP-0484): a token per account and user agent, requested inline in SASL2 and proven with
// HT-SHA-256-NONE on the next login, without the password. Tokens live in the shared token store
// (src/auth/tokens.ts) as verifiers only; a password change revokes them (src/auth/accounts.ts).
import { xml, type Element } from "../xml/element.js";
import { nodeprep } from "../jid/jid.js";
import { LoginThrottled } from "../auth/login.js";
import { fastTokenKey, htMatches, newHtSecret, type FastTokenRecord, type HtVerifier } from "../auth/tokens.js";
import { HT_SHA_256_NONE, type TokenCheck } from "./sasl/ht.js";
import { SaslError } from "./sasl/index.js";
import type { C2sContext } from "./context.js";
import type { AttemptStream } from "./sasl/attempt.js";

export const NS_FAST = "urn:xmpp:fast:0";
const MAX_COUNT = 2 ** 53 - 1;

export function fastFeature(): Element {
  return xml("fast", { xmlns: NS_FAST }, xml("mechanism", null, HT_SHA_256_NONE));
}

/** The FAST part of one SASL2 `<authenticate/>`: a token login, a token request, or both. */
export class FastLogin {
  /** The token this login proved, once it did. */
  private used: { owner: string; which: "current" | "previous" } | null = null;

  private constructor(
    private readonly ctx: C2sContext,
    private readonly stream: AttemptStream,
    private readonly agent: { id: string; software?: string; device?: string },
    private readonly mechanism: string,
    /** `<request-token/>`: issue a token at success. */
    private readonly request: boolean,
    /** `<fast invalidate='true'/>`: the token proven here is revoked (logout). */
    private readonly invalidate: boolean,
    /** `<fast count=…/>`: must grow from one token login to the next (replay protection). */
    private readonly count: number | null,
  ) {}

  /** null when the `<authenticate/>` has nothing of FAST; a SaslError when its FAST part is unusable. */
  static fromAuthenticate(ctx: C2sContext, stream: AttemptStream, el: Element, agent: { id: string } | null): FastLogin | SaslError | null {
    const request = el.getChild("request-token", NS_FAST);
    const fast = el.getChild("fast", NS_FAST);
    const tokenLogin = el.attrs.mechanism === HT_SHA_256_NONE;
    if (!request && !fast && !tokenLogin) return null;
    // XEP-0484 §3: a token belongs to one user agent, named by its id.
    if (!agent?.id) return new SaslError("malformed-request", "FAST needs a <user-agent/> with an id");
    if (request && request.attrs.mechanism !== HT_SHA_256_NONE) return new SaslError("invalid-mechanism", "tokens are issued for HT-SHA-256-NONE only");
    let count: number | null = null;
    if (fast?.attrs.count !== undefined) {
      count = /^\d{1,16}$/.test(fast.attrs.count) ? Number(fast.attrs.count) : -1;
      if (count < 0 || count > MAX_COUNT) return new SaslError("malformed-request", "invalid FAST count");
    }
    const invalidate = fast?.attrs.invalidate === "true" || fast?.attrs.invalidate === "1";
    return new FastLogin(ctx, stream, agent, HT_SHA_256_NONE, request !== undefined, invalidate, count);
  }

  /** The check HT-SHA-256-NONE runs: the user agent's current or previous token, gated by the throttle. */
  tokenCheck(tried: (user: string) => void): TokenCheck {
    return async (username, initiator) => {
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
    if (this.request) issued = newHtSecret(this.ctx.config.auth.fastTokenTtlSeconds * 1000, now);
    if (!issued && !used) return null;
    await tokens.update(owner, key, (cur) => {
      const prior = cur?.kind === "fast" ? cur : null;
      if (issued) {
        const next: FastTokenRecord = {
          kind: "fast", mechanism: this.mechanism, software: this.agent.software, device: this.agent.device, created: now, current: issued.verifier,
        };
        // XEP-0484 §4 (rotation): the token just used stays valid until the new one is used once.
        if (used && prior) next.previous = prior[used.which];
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
