// The production store: PostgreSQL through node-postgres (`pg`), pooled. Several server processes may share
// one database: every write that allocates or checks something (timeline seqs, roster and conversation
// versions, resends) does it inside one SQL statement or one locking transaction, so no process keeps state
// another one could contradict. One file per contract.
//
// Timeline appends are group-committed like in the SQLite driver: the append() calls of one event-loop turn
// become one statement (one round trip, one commit), and up to `maxInFlight` such batches run at once on
// different pooled connections.
import { stanzaIds, type StanzaIds } from "../stanza-ids.js";
import type pg from "pg";
import { listMigrations, migrationsToApply, SchemaOutdatedError } from "../migrate.js";
import type { MapStore, MigrationReport, Store, StoreMonitor } from "../types.js";
import { accountStore } from "./accounts.js";
import { blockListStore } from "./block-lists.js";
import { conversationStore } from "./conversations.js";
import { mapStore } from "./map.js";
import { createPool } from "./pool.js";
import { rosterStore } from "./roster.js";
import { timelineStore } from "./timeline.js";
import { LocalLocks, postgresLockRunner } from "../locks.js";

export interface PostgresStoreOptions {
  /** libpq-style connection URL: postgresql://user:password@host:port/database?sslmode=… */
  url: string;
  /** Connections in the pool (default 10). */
  poolSize?: number;
  /** Apply pending migrations (default true). When false, a database that needs them is refused. */
  migrate?: boolean;
  /** Append batches written concurrently (default: poolSize / 2, at least 1). */
  maxInFlight?: number;
}

export async function openPostgresStore(opts: PostgresStoreOptions): Promise<Store> {
  const poolSize = opts.poolSize ?? 10;
  const pool = createPool(opts.url, poolSize);
  try {
    await applyMigrations(pool, opts.migrate ?? true);
  } catch (err) {
    await pool.end();
    throw err;
  }
  let key: Buffer;
  try {
    // The key of derived stanza-ids (schemas/sql/postgres/0006): the same for every node on this database.
    key = (await pool.query<{ value: Buffer }>("SELECT value FROM server_secrets WHERE name = 'stanza-id'")).rows[0]!.value;
  } catch (err) {
    await pool.end();
    throw err;
  }
  return createStore(pool, opts.url, Math.max(1, opts.maxInFlight ?? Math.floor(poolSize / 2)), stanzaIds(key));
}

/** Applies the pending migrations without opening a store (`hearth migrate`). */
export async function migratePostgres(opts: { url: string }): Promise<MigrationReport> {
  const pool = createPool(opts.url, 1);
  try {
    return await applyMigrations(pool, true);
  } finally {
    await pool.end();
  }
}

// pg_advisory_xact_lock key serializing migrations of one database across processes ("hearth" in ASCII).
const MIGRATION_LOCK = 0x6865617274;

async function applyMigrations(pool: pg.Pool, allowed: boolean): Promise<MigrationReport> {
  const migrations = listMigrations("postgres");
  const newest = migrations.length === 0 ? 0 : migrations[migrations.length - 1].version;
  const current = async (client: pg.PoolClient): Promise<number> => {
    const table = await client.query("SELECT to_regclass('schema_version') IS NOT NULL AS present");
    if (!table.rows[0].present) return 0;
    return (await client.query("SELECT coalesce(max(version), 0) AS v FROM schema_version")).rows[0].v as number;
  };
  const client = await pool.connect();
  try {
    const from = await current(client);
    const applied: string[] = [];
    if (migrationsToApply(from, migrations).length === 0) return { from, to: from, applied };
    if (!allowed) throw new SchemaOutdatedError(from, newest);
    // One transaction per migration (PostgreSQL DDL is transactional), each under a lock that another
    // process migrating at the same moment waits for; after it, that process finds the work done.
    for (;;) {
      await client.query("BEGIN");
      try {
        await client.query("SELECT pg_advisory_xact_lock($1)", [MIGRATION_LOCK]);
        await client.query("CREATE TABLE IF NOT EXISTS schema_version " +
          "(version integer PRIMARY KEY, name text NOT NULL, applied_at bigint NOT NULL)");
        const [next] = migrationsToApply(await current(client), migrations);
        if (next === undefined) {
          await client.query("COMMIT");
          break;
        }
        await client.query(next.sql);
        await client.query("INSERT INTO schema_version (version, name, applied_at) VALUES ($1, $2, $3)",
          [next.version, next.name, Date.now()]);
        await client.query("COMMIT");
        applied.push(`${String(next.version).padStart(4, "0")}_${next.name}`);
      } catch (err) {
        await client.query("ROLLBACK").catch(() => {});
        throw err;
      }
    }
    return { from, to: await current(client), applied };
  } finally {
    client.release();
  }
}

function createStore(pool: pg.Pool, url: string, maxInFlight: number, ids: StanzaIds): Store {
  const monitor: StoreMonitor = {
    onCommit: null,
    pool: () => ({ total: pool.totalCount, idle: pool.idleCount, waiting: pool.waitingCount }),
  };
  const timeline = timelineStore(pool, maxInFlight, monitor, ids);
  const locks = postgresLockRunner(url);
  const maps = new Map<string, MapStore>();
  const mapOrder = new LocalLocks();
  const map = (storeName: string): MapStore => {
    let store = maps.get(storeName);
    if (store === undefined) maps.set(storeName, store = mapStore(pool, storeName, mapOrder));
    return store;
  };
  let closing: Promise<void> | null = null;
  return {
    driver: "postgres",
    monitor,
    accounts: accountStore(pool, timeline.written),
    roster: rosterStore(pool, locks.run),
    timeline: timeline.store,
    blockLists: blockListStore(pool),
    conversations: conversationStore(pool),
    keyValue: map,
    map,
    close() {
      closing ??= (async () => {
        await mapOrder.idle();
        await timeline.close();
        await locks.close();
        await pool.end();
      })();
      return closing;
    },
  };
}
