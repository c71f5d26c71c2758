// Accounts: creation, password changes and removal, shared by XEP-0077, the CLI and the mobile adapter.
// Passwords are turned into salted SCRAM credentials at once; the clear text is never stored.
import { deriveCredentials, prepPassword } from "../c2s/sasl/index.js";
import { nodeprep } from "../jid/jid.js";
import type { Store } from "../storage/types.js";
import type { HookBus } from "../events/hooks.js";
import type { SessionRegistry } from "../sessions/registry.js";

export class AccountError extends Error {
  constructor(readonly code: "exists" | "not-found" | "invalid-username" | "weak-password" | "unknown-host", message: string) {
    super(message);
  }
}

export class AccountService {
  constructor(
    private readonly store: Store,
    private readonly hooks: HookBus,
    private readonly sessions: SessionRegistry,
    private readonly opts: { hosts: readonly string[]; iterations: number; minPasswordLength: number },
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

  async exists(host: string, username: string): Promise<boolean> {
    return (await this.store.accounts.get(host, username)) !== null;
  }

  async create(host: string, username: string, password: string): Promise<string> {
    this.checkHost(host);
    const user = this.prepareUsername(username);
    if (await this.exists(host, user)) throw new AccountError("exists", `${user}@${host} exists already`);
    const creds = await this.credentials(password);
    if (!(await this.store.accounts.create(host, user, creds))) throw new AccountError("exists", `${user}@${host} exists already`);
    await this.hooks.fire("account-created", { host, username: user });
    return user;
  }

  async setPassword(host: string, username: string, password: string): Promise<void> {
    this.checkHost(host);
    const user = this.prepareUsername(username);
    const creds = await this.credentials(password);
    if (!(await this.store.accounts.setCredentials(host, user, creds))) throw new AccountError("not-found", `no account ${user}@${host}`);
  }

  /** Removes the account and all it owns, and closes its sessions (XEP-0077 §3.2: `not-authorized` stream end is the client's cue). */
  async delete(host: string, username: string): Promise<void> {
    this.checkHost(host);
    const user = this.prepareUsername(username);
    if (!(await this.store.accounts.delete(host, user))) throw new AccountError("not-found", `no account ${user}@${host}`);
    for (const s of this.sessions.resources(`${user}@${host}`)) s.close("not-authorized", "the account was removed");
    await this.hooks.fire("account-deleted", { host, username: user });
  }

  async list(host: string): Promise<string[]> {
    this.checkHost(host);
    return this.store.accounts.list(host);
  }
}
