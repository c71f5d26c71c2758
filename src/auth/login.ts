// One login path for every protocol (c2s SASL, mobile login; s2s and SASL2 later): the failure throttle
// gate, the credential lookup, and the count of each outcome, keyed by (address, bare JID) in one space.
import { setTimeout as sleep } from "node:timers/promises";
import { checkPassword, SaslError, type CredentialLookup } from "../c2s/sasl/index.js";
import { nodeprep } from "../jid/jid.js";
import type { Account, Store } from "../storage/types.js";
import type { Config } from "../config/config.js";
import { AuthThrottle } from "./throttle.js";
import { NetworkList } from "./networks.js";
import { TokenStore } from "./tokens.js";
import { nullLogger, type Logger } from "../log.js";

/** The attempt was refused by the throttle; the client may try again after `retryAfterMs`. */
export class LoginThrottled extends Error {
  override readonly name = "LoginThrottled";
  constructor(readonly retryAfterMs: number) {
    super("too many failed attempts; try again later");
  }
}

/** Logins by mechanism since start: plain integers the metrics read when scraped (src/ops/metrics.ts). */
export interface LoginCounts { succeeded: number; failed: number }

export class LoginService {
  /** Every login token of every protocol (mobile device tokens, FAST tokens). */
  readonly tokens: TokenStore;
  /** By mechanism: a SASL name (c2s), "mobile-password" or "mobile-token". */
  readonly counts = new Map<string, LoginCounts>();

  constructor(
    private readonly store: Store,
    private readonly throttle: AuthThrottle,
    private readonly opts: { unknownUserIterations: number },
    /** Each refused attempt is logged once here, with its peer and reason (never the secret). */
    private readonly log: Logger = nullLogger,
  ) {
    this.tokens = new TokenStore(store);
  }

  /** Throws LoginThrottled when the address is refused as a whole (before any account is named). */
  admitAddress(address: string): void {
    const v = this.throttle.addressVerdict(address);
    if (!v.allowed) throw this.throttled(address, null, v.retryAfterMs);
  }

  /** Waits out the pair's delay; throws LoginThrottled when the pair or the address is refused. */
  async admit(address: string, account: string): Promise<void> {
    let v = this.throttle.verdict(address, account);
    if (v.allowed && v.delayMs > 0) {
      await sleep(v.delayMs, undefined, { ref: false });
      // Another attempt of the pair may have failed meanwhile.
      v = this.throttle.verdict(address, account);
    }
    if (!v.allowed) throw this.throttled(address, account, v.retryAfterMs);
  }

  private throttled(peer: string, account: string | null, retryAfterMs: number): LoginThrottled {
    this.log.warn({ peer, account, retryAfterMs }, "login refused: too many failed attempts");
    return new LoginThrottled(retryAfterMs);
  }

  /** `account` null: a name that is no localpart, counted against the address only. */
  failed(address: string, account: string | null, mechanism = "other"): void {
    this.throttle.failed(address, account);
    this.countOf(mechanism).failed++;
    this.log.info({ peer: address, account, mechanism }, "login refused: wrong credentials");
  }

  succeeded(address: string, account: string, mechanism = "other"): void {
    this.throttle.succeeded(address, account);
    this.countOf(mechanism).succeeded++;
  }

  private countOf(mechanism: string): LoginCounts {
    let c = this.counts.get(mechanism);
    if (c === undefined) this.counts.set(mechanism, c = { succeeded: 0, failed: 0 });
    return c;
  }

  /**
   * The credential lookup of one SASL attempt (RFC 6120 §6): admits the (address, account) pair first, so
   * a refused pair ends with `temporary-auth-failure` (RFC 6120 §6.5.13) whatever the password, and
   * tells `tried` which localpart was named, for counting the outcome.
   */
  saslLookup(address: string, host: string, tried: (username: string) => void): CredentialLookup {
    return async (username) => {
      let user: string;
      try { user = nodeprep(username); } catch { return null; }
      tried(user);
      try {
        await this.admit(address, `${user}@${host}`);
      } catch (err) {
        if (err instanceof LoginThrottled) throw new SaslError("temporary-auth-failure", err.message);
        throw err;
      }
      return (await this.store.accounts.get(host, user))?.credentials ?? null;
    };
  }

  /**
   * One attempt with a secret other protocols check themselves (a password, a device token): admitted,
   * checked against the account (null when unknown), counted. Throws LoginThrottled.
   */
  async attempt(address: string, host: string, user: string, check: (account: Account | null) => Promise<boolean>, mechanism = "other"): Promise<boolean> {
    const account = `${user}@${host}`;
    await this.admit(address, account);
    const ok = await check(await this.store.accounts.get(host, user));
    if (ok) this.succeeded(address, account, mechanism);
    else this.failed(address, account, mechanism);
    return ok;
  }

  /** A password login (PLAIN semantics, RFC 4616 §2 preparation). Throws LoginThrottled. */
  password(address: string, host: string, user: string, password: string, mechanism = "mobile-password"): Promise<boolean> {
    return this.attempt(address, host, user, (account) => checkPassword(account?.credentials ?? null, user, password, this.opts.unknownUserIterations), mechanism);
  }
}

/** The node's login service from the `auth` config section. */
export function createLoginService(store: Store, auth: Config["auth"], log?: Logger): LoginService {
  const throttle = new AuthThrottle({
    perPair: auth.maxFailuresPerAccount,
    perAddress: auth.maxFailures,
    windowMs: auth.failureWindowSeconds * 1000,
    delayMs: auth.failureDelayMs,
    maxDelayMs: auth.maxFailureDelayMs,
    exempt: new NetworkList(auth.exemptNetworks),
  });
  return new LoginService(store, throttle, { unknownUserIterations: auth.scramIterations }, log?.child({ component: "auth" }));
}
