// Named locks for read-modify-write sequences that span several store calls (a roster change reads an
// item, decides, writes it back and pushes it). `LocalLocks` serializes the holders of one name inside a
// process; the PostgreSQL driver adds an advisory lock so that nodes sharing the database exclude each
// other too.
import type pg from "pg";
import { createPool } from "./postgres/pool.js";

export type LockRunner = <T>(name: string, fn: () => Promise<T>) => Promise<T>;

/** One holder per name at a time, in call order; names are independent. */
export class LocalLocks {
  private readonly tails = new Map<string, Promise<unknown>>();

  /** Resolves when every holder so far has finished (a store waits for this before it closes). */
  async idle(): Promise<void> {
    while (this.tails.size > 0) await Promise.all([...this.tails.values()]);
  }

  run<T>(name: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.tails.get(name);
    const result = prev === undefined ? fn() : prev.then(fn);
    const tail = result.then(() => undefined, () => undefined);
    this.tails.set(name, tail);
    void tail.then(() => { if (this.tails.get(name) === tail) this.tails.delete(name); });
    return result;
  }
}

const sqliteLocks = new Map<string, LocalLocks>();

/**
 * SQLite is one process's database: the store clients of one file in this process share their locks
 * (":memory:" databases are private to their client).
 */
export function sqliteLockRunner(path: string): LockRunner {
  let locks = path === ":memory:" || path === "" ? new LocalLocks() : sqliteLocks.get(path);
  if (!locks) sqliteLocks.set(path, (locks = new LocalLocks()));
  const held = locks;
  return (name, fn) => held.run(name, fn);
}

const RETRY_MIN_MS = 2;
const RETRY_MAX_MS = 50;

/**
 * PostgreSQL: within the process as above, then a session-level advisory lock on a connection of its own
 * (never one of the pool's: a holder's own queries must not wait for the connection its lock sits on).
 * The lock is tried, not waited for, so that one busy name does not hold back the others on that
 * connection. A node that dies loses its connection, and PostgreSQL releases its locks.
 */
export function postgresLockRunner(url: string): { run: LockRunner; close(): Promise<void> } {
  const local = new LocalLocks();
  let pool: pg.Pool | null = null;
  let current: Promise<pg.PoolClient> | null = null;
  const dropped = new WeakSet<pg.PoolClient>();
  /** A broken connection has released every lock it held: the next holder opens a new one. */
  const drop = (c: pg.PoolClient): void => {
    if (dropped.has(c)) return;
    dropped.add(c);
    current = null;
    c.release(true);
  };
  const connection = (): Promise<pg.PoolClient> => {
    pool ??= createPool(url, 1);
    current ??= pool.connect().then((c) => {
      c.on("error", () => drop(c));
      return c;
    }, (err: unknown) => { current = null; throw err; });
    return current;
  };
  const query = async (sql: string, name: string): Promise<boolean> => {
    const c = await connection();
    try {
      return (await c.query<{ ok: boolean }>(sql, [name])).rows[0].ok;
    } catch (err) {
      drop(c);
      throw err;
    }
  };
  const acquire = async (name: string): Promise<void> => {
    for (let wait = RETRY_MIN_MS; ; wait = Math.min(wait * 2, RETRY_MAX_MS)) {
      if (await query("SELECT pg_try_advisory_lock(hashtextextended($1, 0)) AS ok", name)) return;
      await new Promise((r) => setTimeout(r, wait));
    }
  };
  const run: LockRunner = (name, fn) => local.run(name, async () => {
    await acquire(name);
    try {
      return await fn();
    } finally {
      await query("SELECT pg_advisory_unlock(hashtextextended($1, 0)) AS ok", name).catch(() => {});
    }
  });
  return {
    run,
    async close() {
      const c = await current?.catch(() => null);
      if (c && !dropped.has(c)) { dropped.add(c); c.release(); }
      await pool?.end();
    },
  };
}
