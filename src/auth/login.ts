// One login path for every protocol (c2s SASL, mobile login; s2s and SASL2 later): the failure throttle
// gate, the credential lookup, and the count of each outcome, keyed by (address, bare JID) in one space.
import { setTimeout as sleep } from "node:timers/promises";
import { checkPassword, SaslError, type CredentialLookup } from "../c2s/sasl/index.js";
import { nodeprep } from "../jid/jid.js";
import type { Account, MapStore, Store } from "../storage/types.js";
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

/**
 * The account is disabled by an administrator (src/admin): refused by every login path (SASL, SASL2, FAST
 * tokens, mobile passwords and device tokens) whatever the credentials. Not counted as a failure.
 */
export class AccountDisabled extends Error {
  override readonly name = "AccountDisabled";
  constructor(readonly account: string) {
    super("the account is disabled");
  }
}

/** A refused login, for the admin console's recent errors (never the secret). */
export interface LoginRefusal { time: number; peer: string; account: string | null; reason: string; mechanism?: string }

/** Logins by mechanism since start: plain integers the metrics read when scraped (src/ops/metrics.ts). */
export interface LoginCounts { succeeded: number; failed: number }

export class LoginService {
  /** Every login token of every protocol (mobile device tokens, FAST tokens). */
  readonly tokens: TokenStore;
  /** By mechanism: a SASL name (c2s), "mobile-password" or "mobile-token". */
  readonly counts = new Map<string, LoginCounts>();
  /** Told of every refused login (wrong credentials, throttled, disabled account). */
  readonly refusals = new Set<(r: LoginRefusal) => void>();
  /** Disabled accounts: owner = host, key = localpart, value = JSON { since }. */
  private readonly disabledMap: MapStore;

  constructor(
    private readonly store: Store,
    private readonly throttle: AuthThrottle,
    private readonly opts: { unknownUserIterations: number },
    /** Each refused attempt is logged once here, with its peer and reason (never the secret). */
    private readonly log: Logger = nullLogger,
  ) {
    this.tokens = new TokenStore(store);
    this.disabledMap = store.map("auth:disabled");
  }

  private refused(r: Omit<LoginRefusal, "time">): void {
    for (const fn of this.refusals) {
      try { fn({ time: Date.now(), ...r }); } catch { /* a listener never stops a login */ }
    }
  }

  /** Whether an administrator disabled the account (one indexed read; asked once per login). */
  async isDisabled(host: string, user: string): Promise<boolean> {
    return (await this.disabledMap.get(host, user)) !== null;
  }

  /** Disables or re-enables the account; resolves to whether that changed anything. */
  async setDisabled(host: string, user: string, disabled: boolean): Promise<boolean> {
    if (!disabled) return this.disabledMap.delete(host, user);
    let changed = false;
    await this.disabledMap.update(host, user, (cur) => {
      if (cur !== null) return undefined;
      changed = true;
      return JSON.stringify({ since: Date.now() });
    });
    return changed;
  }

  /** The disabled localparts of a host, ascending. */
  async disabledAccounts(host: string): Promise<string[]> {
    return [...(await this.disabledMap.list(host)).keys()];
  }

  /** Throws AccountDisabled (and reports the refusal) when the account is disabled. */
  async checkEnabled(address: string, host: string, user: string, mechanism: string): Promise<void> {
    if (!(await this.isDisabled(host, user))) return;
    this.log.info({ peer: address, account: `${user}@${host}`, mechanism }, "login refused: the account is disabled");
    this.refused({ peer: address, account: `${user}@${host}`, reason: "account disabled", mechanism });
    throw new AccountDisabled(`${user}@${host}`);
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
    this.refused({ peer, account, reason: "too many failed attempts" });
    return new LoginThrottled(retryAfterMs);
  }

  /** `account` null: a name that is no localpart, counted against the address only. */
  failed(address: string, account: string | null, mechanism = "other"): void {
    this.throttle.failed(address, account);
    this.countOf(mechanism).failed++;
    this.log.info({ peer: address, account, mechanism }, "login refused: wrong credentials");
    this.refused({ peer: address, account, reason: "wrong credentials", mechanism });
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
   * checked against the account (null when unknown), counted. Throws LoginThrottled, or AccountDisabled
   * after a right secret.
   */
  async attempt(address: string, host: string, user: string, check: (account: Account | null) => Promise<boolean>, mechanism = "other"): Promise<boolean> {
    const account = `${user}@${host}`;
    await this.admit(address, account);
    const ok = await check(await this.store.accounts.get(host, user));
    if (!ok) {
      this.failed(address, account, mechanism);
      return false;
    }
    // Only after the secret was proven: a wrong guess must not learn that the account is disabled.
    await this.checkEnabled(address, host, user, mechanism);
    this.succeeded(address, account, mechanism);
    return true;
  }

  /** A password login (PLAIN semantics, RFC 4616 §2 preparation). Throws LoginThrottled or AccountDisabled. */
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
