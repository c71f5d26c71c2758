// The admin actions, one implementation behind the console (HTTP), the XEP-0133 commands and the CLI: what
// is online and how busy the node is, and kick, disable/enable, password reset, announce. Reading is cheap
// (the session registry in memory, two small ring buffers); nothing here runs per stanza.
import { RemoteSession } from "../cluster/remote-session.js";
import { AccountError, type AccountService } from "../auth/accounts.js";
import type { LoginRefusal } from "../auth/login.js";
import { tryParseJid, type Jid } from "../jid/jid.js";
import type { ModuleApi } from "../modules/module.js";
import type { Session, Transport } from "../sessions/session.js";
import { xml } from "../xml/element.js";

/** A failed admin action, with the status every front end maps it to (HTTP, stanza error, exit code). */
export class AdminError extends Error {
  constructor(readonly code: "bad-request" | "not-found" | "forbidden", message: string) {
    super(message);
  }
}

export interface SessionInfo {
  jid: string;
  node: string;
  transport: Transport;
  /** What the client said it is: SASL2 user agent, mobile platform, or its XEP-0115 caps node. */
  client: string | null;
  address: string;
  secure: boolean;
  /** When the resource was bound (ms since the epoch), when known. */
  since: number | null;
}

export interface HostCount { host: string; accounts: number; online: number; sessions: number; disabled: number }
export interface RateSample { time: number; messages: number; logins: number; loginFailures: number }
export interface RecentError { time: number; level: "warn" | "error" | "fatal" | "login"; message: string }
export interface NodeInfo { id: string; self: boolean; sessions: number }

/** A fixed-size ring: the newest `size` entries, oldest first. */
export class Ring<T> {
  private readonly items: T[] = [];
  private next = 0;
  constructor(private readonly size: number) {}
  push(item: T): void {
    if (this.items.length < this.size) this.items.push(item);
    else this.items[this.next] = item;
    this.next = (this.next + 1) % this.size;
  }
  toArray(): T[] {
    return this.items.length < this.size ? [...this.items] : [...this.items.slice(this.next), ...this.items.slice(0, this.next)];
  }
}

/** The recent errors every server keeps: warn/error log lines and refused logins. */
export class RecentErrors extends Ring<RecentError> {
  constructor() { super(100); }

  /** A pino JSON line (the log tap); only warn and above are kept. Cheap for the others. */
  fromLogLine(line: string): void {
    // Refused logins come from the login service itself (fromRefusal), with their reason.
    if (!/"level":(4|5|6)0/.test(line) || line.includes('"msg":"login refused')) return;
    let e: { level?: number; time?: string | number; msg?: string; err?: { message?: string }; peer?: string; jid?: string };
    try { e = JSON.parse(line); } catch { return; }
    const level = e.level === 40 ? "warn" : e.level === 50 ? "error" : "fatal";
    const time = typeof e.time === "string" ? Date.parse(e.time) : typeof e.time === "number" ? e.time : Date.now();
    const parts = [e.msg ?? "", e.err?.message ? `(${e.err.message})` : "", e.peer ? `peer ${e.peer}` : "", e.jid ? `jid ${e.jid}` : ""];
    this.push({ time: Number.isNaN(time) ? Date.now() : time, level, message: parts.filter(Boolean).join(" ").slice(0, 500) });
  }

  fromRefusal(r: LoginRefusal): void {
    const who = r.account ?? "(no account named)";
    this.push({ time: r.time, level: "login", message: `login refused for ${who} from ${r.peer}: ${r.reason}${r.mechanism ? ` (${r.mechanism})` : ""}` });
  }
}

/** What the composition root tells the service once the cluster is up. */
export interface AdminAttachment {
  nodeId(): string;
  /** Nodes in the cluster as Redis lists them (1 without Redis). */
  probe(): Promise<{ nodes: number }>;
  recent: RecentErrors;
}

const SAMPLES = 60;
const ACCOUNT_COUNT_TTL_MS = 30_000;
const CAPS = "http://jabber.org/protocol/caps";

export class AdminService {
  private readonly boundAt = new WeakMap<Session, number>();
  private readonly samples = new Ring<RateSample>(SAMPLES);
  private last: { messages: number; logins: number; failures: number };
  private attachment: AdminAttachment | null = null;
  /** Errors and refusals seen before the composition root attached its ring (and in tests without one). */
  private readonly ownRecent = new RecentErrors();
  /** Accounts per host: the store can only list them, and the console asks every few seconds. */
  private readonly accountCounts = new Map<string, { n: number; until: number }>();

  constructor(private readonly api: ModuleApi<unknown>) {
    this.last = this.counters();
    api.observe("resource-bind", ({ session }) => { this.boundAt.set(session, Date.now()); });
    const forget = ({ host }: { host: string }) => { this.accountCounts.delete(host); };
    api.observe("account-created", forget);
    api.observe("account-deleted", forget);
    api.setInterval(() => this.sample(), api.config.admin.sampleSeconds * 1000);
  }

  attach(a: AdminAttachment): void { this.attachment = a; }

  get accounts(): AccountService { return this.api.accounts; }

  get recent(): RecentErrors { return this.attachment?.recent ?? this.ownRecent; }

  nodeId(): string { return this.attachment?.nodeId() ?? "local"; }

  isAdmin(jid: Jid | string): boolean {
    const bare = typeof jid === "string" ? jid : jid.bareString();
    return this.api.config.admin.accounts.includes(bare.toLowerCase());
  }

  // ---- reading ----

  sessions(): SessionInfo[] {
    const out: SessionInfo[] = [];
    for (const s of this.api.sessions.all()) {
      if (!s.jid) continue;
      out.push({
        jid: s.jid.toString(), node: s instanceof RemoteSession ? s.node : this.nodeId(), transport: s.protocol, client: clientOf(s),
        address: s.remoteAddress, secure: s.secure, since: s instanceof RemoteSession ? s.boundAt : this.boundAt.get(s) ?? null,
      });
    }
    return out.sort((a, b) => a.jid.localeCompare(b.jid));
  }

  async hostCounts(): Promise<HostCount[]> {
    const online = new Map<string, Set<string>>();
    const sessions = new Map<string, number>();
    for (const s of this.api.sessions.all()) {
      if (!s.jid) continue;
      const host = s.jid.domain;
      let set = online.get(host);
      if (!set) online.set(host, (set = new Set()));
      set.add(s.jid.bareString());
      sessions.set(host, (sessions.get(host) ?? 0) + 1);
    }
    return Promise.all(this.api.hosts.map(async (host) => ({
      host,
      accounts: await this.accountCount(host),
      online: online.get(host)?.size ?? 0,
      sessions: sessions.get(host) ?? 0,
      disabled: (await this.api.accounts.login.disabledAccounts(host)).length,
    })));
  }

  private async accountCount(host: string): Promise<number> {
    const now = Date.now();
    const cached = this.accountCounts.get(host);
    if (cached && cached.until > now) return cached.n;
    const n = (await this.api.accounts.list(host)).length;
    this.accountCounts.set(host, { n, until: now + ACCOUNT_COUNT_TTL_MS });
    return n;
  }

  async nodes(): Promise<{ count: number | null; nodes: NodeInfo[] }> {
    const self = this.nodeId();
    const counts = new Map<string, number>([[self, 0]]);
    for (const s of this.api.sessions.all()) {
      const node = s instanceof RemoteSession ? s.node : self;
      counts.set(node, (counts.get(node) ?? 0) + 1);
    }
    let count: number | null = 1;
    if (this.attachment) {
      try { count = (await this.attachment.probe()).nodes; } catch { count = null; }
    }
    return { count, nodes: [...counts].map(([id, n]) => ({ id, self: id === self, sessions: n })) };
  }

  rates(): { intervalSeconds: number; samples: RateSample[] } {
    return { intervalSeconds: this.api.config.admin.sampleSeconds, samples: this.samples.toArray() };
  }

  rooms(): Array<{ room: string; occupants: number }> {
    return this.api.useOptional("rooms")?.live().sort((a, b) => a.room.localeCompare(b.room)) ?? [];
  }

  errors(): RecentError[] {
    return this.recent.toArray().reverse();
  }

  // ---- actions ----

  /**
   * Ends the session of a full JID, or every session of a bare JID; resolves to how many. RFC 6120 §4.9.3.14
   * `policy-violation` ("the entity has violated some local service policy"): `conflict` would tell the
   * client a new session replaced it (§4.9.3.3), and many clients then stop reconnecting for good.
   */
  kick(address: string, text = "kicked by an administrator"): number {
    const j = tryParseJid(address);
    if (!j || !j.local) throw new AdminError("bad-request", `"${address}" is not a user JID`);
    const targets = j.resource ? [this.api.sessions.get(j)].filter((s): s is Session => s !== undefined) : this.api.sessions.resources(j.bareString());
    if (targets.length === 0) throw new AdminError("not-found", `${j.toString()} has no session`);
    for (const s of targets) s.close("policy-violation", text);
    this.api.log.info({ jid: j.toString(), sessions: targets.length }, "admin: sessions kicked");
    return targets.length;
  }

  /** Disables the account (no login by any path) and ends its sessions; false when it was disabled already. */
  async disable(address: string): Promise<boolean> {
    const { host, user } = await this.existing(address);
    const changed = await this.api.accounts.login.setDisabled(host, user, true);
    this.kickDisabled(`${user}@${host}`);
    this.api.log.info({ account: `${user}@${host}` }, "admin: account disabled");
    return changed;
  }

  async enable(address: string): Promise<boolean> {
    const { host, user } = await this.existing(address);
    const changed = await this.api.accounts.login.setDisabled(host, user, false);
    this.api.log.info({ account: `${user}@${host}` }, "admin: account enabled");
    return changed;
  }

  /** Ends the sessions of disabled accounts (a disable written to the store by the CLI or another node). */
  async sweepDisabled(): Promise<number> {
    let n = 0;
    for (const host of this.api.hosts) {
      for (const user of await this.api.accounts.login.disabledAccounts(host)) n += this.kickDisabled(`${user}@${host}`, true);
    }
    return n;
  }

  /** Every node sweeps its own sessions; an action closes them wherever they are. */
  private kickDisabled(bare: string, localOnly = false): number {
    const sessions = this.api.sessions.resources(bare).filter((s) => !localOnly || !(s instanceof RemoteSession));
    for (const s of sessions) s.close("policy-violation", "the account was disabled");
    return sessions.length;
  }

  async isDisabled(address: string): Promise<boolean> {
    const { host, user } = this.parseBare(address);
    return this.api.accounts.login.isDisabled(host, user);
  }

  /** Sets a new password; the account's FAST and device tokens are revoked with it (AccountService). */
  async resetPassword(address: string, password: string): Promise<void> {
    const { host, user } = this.parseBare(address);
    await this.wrap(() => this.api.accounts.setPassword(host, user, password));
    this.api.log.info({ account: `${user}@${host}` }, "admin: password reset");
  }

  async addUser(address: string, password: string): Promise<string> {
    const { host, user } = this.parseBare(address);
    const created = await this.wrap(() => this.api.accounts.create(host, user, password));
    return `${created}@${host}`;
  }

  async deleteUser(address: string): Promise<void> {
    const { host, user } = this.parseBare(address);
    await this.wrap(() => this.api.accounts.delete(host, user));
    await this.api.accounts.login.setDisabled(host, user, false);
  }

  /**
   * XEP-0133 §4.23: a message from the server domain to every online resource of the host (type headline:
   * shown, not stored offline, not archived). Resolves to how many resources it went to.
   */
  announce(host: string, body: string, subject?: string): number {
    if (!this.api.hosts.includes(host)) throw new AdminError("not-found", `${host} is not served here`);
    if (body.trim() === "") throw new AdminError("bad-request", "the announcement is empty");
    if (body.length > 10_000) throw new AdminError("bad-request", "the announcement is longer than 10000 characters");
    let n = 0;
    for (const s of [...this.api.sessions.all()]) {
      if (!s.jid || s.jid.domain !== host) continue;
      this.api.send(xml("message", { from: host, to: s.jid.toString(), type: "headline", id: `announce-${Date.now().toString(36)}-${n}` },
        subject ? xml("subject", null, subject) : null, xml("body", null, body)));
      n++;
    }
    this.api.log.info({ host, resources: n }, "admin: announcement sent");
    return n;
  }

  /** user@host of a served host, prepared; AdminError otherwise. */
  parseBare(address: string): { host: string; user: string } {
    const j = tryParseJid(address.trim());
    if (!j || !j.local || j.resource) throw new AdminError("bad-request", `"${address}" is not a USER@HOST address`);
    if (!this.api.hosts.includes(j.domain)) throw new AdminError("not-found", `${j.domain} is not served here`);
    return { host: j.domain, user: j.local };
  }

  private async existing(address: string): Promise<{ host: string; user: string }> {
    const a = this.parseBare(address);
    if (!(await this.api.accounts.exists(a.host, a.user))) throw new AdminError("not-found", `no account ${a.user}@${a.host}`);
    return a;
  }

  private async wrap<T>(fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      if (err instanceof AccountError) {
        throw new AdminError(err.code === "not-found" || err.code === "unknown-host" ? "not-found" : "bad-request", err.message);
      }
      throw err;
    }
  }

  private counters(): { messages: number; logins: number; failures: number } {
    let logins = 0, failures = 0;
    for (const c of this.api.accounts.login.counts.values()) { logins += c.succeeded; failures += c.failed; }
    return { messages: this.api.router.traffic.in.message, logins, failures };
  }

  private sample(): void {
    const now = this.counters();
    this.samples.push({ time: Date.now(), messages: now.messages - this.last.messages, logins: now.logins - this.last.logins, loginFailures: now.failures - this.last.failures });
    this.last = now;
  }
}

/** What a session says about its client, without asking it. */
function clientOf(s: Session): string | null {
  const agent = s.data.get("user-agent") as { software?: string; device?: string } | undefined;
  if (agent && (agent.software || agent.device)) return [agent.software, agent.device].filter(Boolean).join(" on ");
  const mobile = s as Session & { platformClass?: string; deviceId?: string };
  if (s.protocol === "mobile" && typeof mobile.platformClass === "string") return `mobile app (${mobile.platformClass})`;
  const caps = s.presence?.getChild("c", CAPS)?.attrs.node;
  return typeof caps === "string" && caps !== "" ? caps : null;
}
