// What a scenario gets to work with (BenchContext) and what it returns
// (ScenarioResult), plus the shared helpers: account preparation (XEP-0077
// registration + one warm-up login per account so that PBKDF2 runs outside the
// measured windows), bulk logins with bounded parallelism, and tracking of every
// client a scenario opens so that they are all closed when it ends or times out.
import { performance } from 'node:perf_hooks';
import { XmppClient, type AuthMode, type Target } from './client.js';
import { ScramKeyCache } from './scram.js';
import { Latency, type CpuSummary, type LatencySummary } from './stats.js';

export type MetricValue = number | string | boolean | null | LatencySummary | CpuSummary;

export interface ScenarioResult {
  scenario: string;
  ok: boolean;
  error?: string;
  warnings: string[];
  /** sizes the scenario ran with */
  params: Record<string, number | string | boolean>;
  /** figures, in display order; LatencySummary values are in ms, CpuSummary is the measured window's CPU */
  metrics: Record<string, MetricValue>;
  elapsed_s?: number;
}

export interface ServerInfo {
  /** pid to read /proc/<pid>/{stat,status} from, or null if unknown */
  pid: number | null;
  /** the server runs inside this process (--fake): CPU and RSS include the generator */
  inProcess: boolean;
  description: string;
  /** --nodes N: the pids of the other nodes, and the Redis they share */
  otherPids?: Array<number | null>;
  redisUrl?: string | null;
}

export const USER_PASSWORD = 'pw';
export const userName = (i: number): string => `user${i}`;

export class AbortedError extends Error {}

/** Every client a scenario opens, so that the runner can close them all at the end or on timeout. */
export class ClientSet {
  readonly all = new Set<XmppClient>();

  open(target: Target): XmppClient {
    const c = new XmppClient(target);
    this.all.add(c);
    c.sock.once('close', () => this.all.delete(c));
    return c;
  }

  /** Graceful close of every open client (bounded by graceMs), in batches to spare the server. */
  async closeAll(graceMs = 3000): Promise<void> {
    const list = [...this.all];
    const deadline = Date.now() + graceMs;
    for (let i = 0; i < list.length; i += 500) {
      const left = deadline - Date.now();
      if (left <= 0) break;
      await Promise.race([Promise.all(list.slice(i, i + 500).map((c) => c.close(left))), sleepPlain(left)]);
    }
    this.destroyAll();
  }

  destroyAll(): void {
    for (const c of this.all) c.destroy();
    this.all.clear();
  }
}

export function sleepPlain(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

export interface BenchOptions {
  auth: AuthMode;
  /** per-login / per-registration timeout, ms */
  opTimeoutMs: number;
  /** per-scenario global timeout, s */
  scenarioTimeoutS: number;
  verbose: boolean;
}

export interface LoginManyResult {
  clients: XmppClient[];
  latency: Latency;
  failed: number;
  firstError: string | null;
  mechanisms: Set<string>;
  wall_s: number;
}

export class BenchContext {
  readonly clients = new ClientSet();
  private readonly abort = new AbortController();

  constructor(
    readonly scenario: string,
    readonly target: Target,
    readonly server: ServerInfo,
    readonly opts: BenchOptions,
    readonly accounts: AccountPool,
    /** raw --flag values (for scenarios to read their own options, see param()) */
    private readonly flags: Map<string, string>,
    /** every node of a cluster (--nodes): clients log in round-robin by user number */
    readonly targets: Target[] = [target],
  ) {}

  /** The node user N logs in to: user1 → the first, user2 → the second, … (chat partners land on different nodes). */
  targetFor(user: number): Target {
    return this.targets[(user - 1) % this.targets.length]!;
  }

  get signal(): AbortSignal {
    return this.abort.signal;
  }

  abortNow(reason: string): void {
    this.abort.abort(new AbortedError(reason));
  }

  throwIfAborted(): void {
    if (this.abort.signal.aborted) throw this.abort.signal.reason as Error;
  }

  /**
   * A numeric size: the first of --<flag>, --<generic> (e.g. --n, --duration: they apply to every
   * selected scenario), $<env>, default.
   */
  num(flag: string, env: string, def: number, generic?: string): number {
    const raw = this.flags.get(flag) ?? (generic ? this.flags.get(generic) : undefined) ?? process.env[env];
    if (raw === undefined || raw === '') return def;
    const v = Number(raw);
    if (!Number.isFinite(v) || v < 0) throw new Error(`bad value for --${flag} / ${env}: ${raw}`);
    return v;
  }

  /** A string option: --<flag>, else $<env>, else def. */
  param(flag: string, env: string, def: string): string {
    return this.flags.get(flag) ?? process.env[env] ?? def;
  }

  log(msg: string): void {
    process.stderr.write(`[bench ${this.scenario}] ${msg}\n`);
  }

  /** Sleep that ends early (rejects) when the scenario is aborted. */
  sleep(ms: number): Promise<void> {
    const signal = this.abort.signal;
    if (signal.aborted) return Promise.reject(signal.reason as Error);
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => {
        signal.removeEventListener('abort', onAbort);
        resolve();
      }, ms);
      const onAbort = () => {
        clearTimeout(t);
        reject(signal.reason as Error);
      };
      signal.addEventListener('abort', onAbort, { once: true });
    });
  }

  /** Wait until cond() holds (polled every pollMs) or maxMs elapsed; returns cond(). */
  async waitFor(cond: () => boolean, maxMs: number, pollMs = 20): Promise<boolean> {
    const end = performance.now() + maxMs;
    while (!cond()) {
      if (performance.now() >= end) return cond();
      await this.sleep(Math.min(pollMs, Math.max(1, end - performance.now())));
    }
    return true;
  }

  /** Registered and warmed-up accounts user1..userN (see AccountPool). */
  ensureAccounts(n: number): Promise<void> {
    return this.accounts.ensure(this, n);
  }

  /**
   * Log in users (numbers) with at most `concurrency` logins in flight; clients stay connected.
   * Failed logins are counted (and their connections closed), not thrown.
   */
  async loginMany(users: number[], concurrency: number, onProgress?: (done: number) => void): Promise<LoginManyResult> {
    const latency = new Latency();
    const clients: XmppClient[] = new Array(users.length);
    const mechanisms = new Set<string>();
    let next = 0;
    let done = 0;
    let failed = 0;
    let firstError: string | null = null;
    const t0 = performance.now();
    const worker = async () => {
      while (next < users.length && !this.signal.aborted) {
        const k = next++;
        const u = users[k]!;
        const c = this.clients.open(this.targetFor(u));
        try {
          const r = await c.login(userName(u), USER_PASSWORD, {
            auth: this.opts.auth,
            cache: this.accounts.scram,
            timeoutMs: this.opts.opTimeoutMs,
          });
          latency.add(r.ms * 1000);
          mechanisms.add(r.mechanism);
          clients[k] = c;
        } catch (e) {
          failed++;
          firstError ??= `${userName(u)}: ${(e as Error).message}`;
          c.destroy();
        }
        done++;
        if (onProgress) onProgress(done);
      }
    };
    await Promise.all(Array.from({ length: Math.max(1, Math.min(concurrency, users.length)) }, worker));
    this.throwIfAborted();
    return {
      clients: clients.filter((c) => c !== undefined),
      latency,
      failed,
      firstError,
      mechanisms,
      wall_s: (performance.now() - t0) / 1000,
    };
  }
}

/**
 * Accounts user1..userN with password "pw", registered with XEP-0077 and logged in once each
 * (warm-up: fills the SCRAM key cache and warms the server) the first time a scenario needs them.
 */
export class AccountPool {
  readonly scram = new ScramKeyCache();
  private ready = 0; // user1..user{ready} are registered and warmed up
  created = 0;
  existed = 0;

  /** The server lost its accounts (restart of a non-persistent server). */
  forget(): void {
    this.ready = 0;
  }

  async ensure(ctx: BenchContext, n: number): Promise<void> {
    if (n <= this.ready) return;
    const from = this.ready + 1;
    const users = Array.from({ length: n - this.ready }, (_, k) => from + k);
    const t0 = performance.now();
    ctx.log(`registering user${from}..user${n} (XEP-0077)`);
    let next = 0;
    let firstError: string | null = null;
    let failed = 0;
    const regWorker = async () => {
      while (next < users.length && !ctx.signal.aborted) {
        const u = users[next++]!;
        const c = ctx.clients.open(ctx.targetFor(u));
        try {
          const r = await c.register(userName(u), USER_PASSWORD, ctx.opts.opTimeoutMs);
          if (r === 'created') this.created++;
          else this.existed++;
        } catch (e) {
          failed++;
          firstError ??= (e as Error).message;
        } finally {
          c.destroy();
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(50, users.length) }, regWorker));
    ctx.throwIfAborted();
    if (failed > 0) throw new Error(`${failed} registrations failed; first: ${firstError}`);
    const t1 = performance.now();
    ctx.log(`registered in ${((t1 - t0) / 1000).toFixed(1)} s (${this.created} new, ${this.existed} existing so far); warm-up logins`);
    const r = await ctx.loginMany(users, 100);
    await Promise.all(r.clients.map((c) => c.close(2000)));
    if (r.failed > 0) throw new Error(`${r.failed} warm-up logins failed; first: ${r.firstError}`);
    ctx.log(
      `warm-up logins done in ${((performance.now() - t1) / 1000).toFixed(1)} s (${[...r.mechanisms].join(', ')}, ${this.scram.derivations} PBKDF2 derivations so far)`,
    );
    this.ready = n;
  }
}
