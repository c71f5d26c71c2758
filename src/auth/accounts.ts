// Accounts: creation, password changes and removal, shared by XEP-0077, the CLI and the mobile adapter;
// and the login service every protocol authenticates through (src/auth/login.ts).
// Passwords are turned into salted SCRAM credentials at once; the clear text is never stored.
import { deriveCredentials, prepPassword } from "../c2s/sasl/index.js";
import { nodeprep } from "../jid/jid.js";
import type { Store } from "../storage/types.js";
import type { HookBuses } from "../events/hooks.js";
import type { SessionRegistry } from "../sessions/registry.js";
import type { LoginService } from "./login.js";

export class AccountError extends Error {
  constructor(readonly code: "exists" | "not-found" | "invalid-username" | "weak-password" | "unknown-host", message: string) {
    super(message);
  }
}

/** How many known-existing accounts `exists()` remembers, and for how long (another process may remove one). */
const EXISTS_CACHE = 50_000;
const EXISTS_TTL_MS = 30_000;

export class AccountService {
  private readonly known = new Map<string, number>();
  /** Bumped by every removal: a lookup that overlapped one must not remember what it read before it. */
  private removals = 0;

  constructor(
    private readonly store: Store,
    private readonly hooks: HookBuses,
    private readonly sessions: SessionRegistry,
    private readonly opts: { hosts: readonly string[]; iterations: number; minPasswordLength: number },
    /** The one login path (credential check and failure throttle) of every protocol. */
    readonly login: LoginService,
  ) {}

  /** The prepared localpart, or an AccountError. */
  prepareUsername(username: string): string {
    let prepared: string;
    try {
      prepared = nodeprep(username);
    } catch (err) {
      throw new AccountError("invalid-username", `invalid username: ${(err as Error).message}`);
    }
    if (!prepared) throw new AccountError("invalid-username", "the username is empty");
    return prepared;
  }

  private checkHost(host: string): void {
    if (!this.opts.hosts.includes(host)) throw new AccountError("unknown-host", `${host} is not served here`);
  }

  private async credentials(password: string) {
    let prepared: string;
    try {
      prepared = prepPassword(password);
    } catch {
      throw new AccountError("weak-password", "the password contains prohibited characters");
    }
    if (prepared.length < this.opts.minPasswordLength) {
      throw new AccountError("weak-password", `the password must have at least ${this.opts.minPasswordLength} characters`);
    }
    return deriveCredentials(password, this.opts.iterations);
  }

  /**
   * Whether the account exists. Positive answers are remembered for a short while (bounded): the message
   * path asks this for every stanza, and with a networked store it would cost a round trip each time.
   * Removal through this service forgets at once; a removal by another process is seen within the TTL.
   * A remembered answer comes without a promise (DESIGN.md: no await where the value is not a promise).
   */
  exists(host: string, username: string): boolean | Promise<boolean> {
    const key = `${username}@${host}`;
    const now = Date.now();
    const until = this.known.get(key);
    if (until !== undefined && until > now) return true;
    return this.lookUp(host, username, key, now);
  }

  private async lookUp(host: string, username: string, key: string, now: number): Promise<boolean> {
    const removals = this.removals;
    const found = (await this.store.accounts.get(host, username)) !== null;
    if (found && removals === this.removals) {
      if (this.known.size >= EXISTS_CACHE) this.known.clear();
      this.known.set(key, now + EXISTS_TTL_MS);
    } else this.known.delete(key);
    return found;
  }

  async create(host: string, username: string, password: string): Promise<string> {
    this.checkHost(host);
    const user = this.prepareUsername(username);
    if (await this.exists(host, user)) throw new AccountError("exists", `${user}@${host} exists already`);
    const creds = await this.credentials(password);
    if (!(await this.store.accounts.create(host, user, creds))) throw new AccountError("exists", `${user}@${host} exists already`);
    await this.hooks.notify(host, "account-created", { host, username: user });
    return user;
  }

  async setPassword(host: string, username: string, password: string): Promise<void> {
    this.checkHost(host);
    const user = this.prepareUsername(username);
    const creds = await this.credentials(password);
    if (!(await this.store.accounts.setCredentials(host, user, creds))) throw new AccountError("not-found", `no account ${user}@${host}`);
    // XEP-0484 §6: a password change invalidates the tokens issued under the old one (of every protocol).
    await this.login.tokens.revokeAll(`${user}@${host}`);
  }

  /** Removes the account and all it owns, and closes its sessions (XEP-0077 §3.2: `not-authorized` stream end is the client's cue). */
  async delete(host: string, username: string): Promise<void> {
    this.checkHost(host);
    const user = this.prepareUsername(username);
    const deleted = await this.store.accounts.delete(host, user);
    this.removals++;
    this.known.delete(`${user}@${host}`);
    if (!deleted) throw new AccountError("not-found", `no account ${user}@${host}`);
    await this.login.tokens.revokeAll(`${user}@${host}`);
    for (const s of this.sessions.resources(`${user}@${host}`)) s.close("not-authorized", "the account was removed");
    await this.hooks.notify(host, "account-deleted", { host, username: user });
  }

  async list(host: string): Promise<string[]> {
    this.checkHost(host);
    return this.store.accounts.list(host);
  }
}
