// The embedded store: SQLite through better-sqlite3, the default so that `npm start` needs nothing else.
// better-sqlite3 is synchronous, so every method computes its value at once and returns it settled; only
// timeline appends wait, for the group commit of the event-loop turn in the writer thread (and reads of
// the timeline wait for the appends issued before them). One file per contract.
import { mkdirSync } from "node:fs";
import { dirname, resolve } from "node:path";
import Database from "better-sqlite3";
import { listMigrations, migrationsToApply, SchemaOutdatedError } from "../migrate.js";
import type { MapStore, MigrationReport, Store, StoreMonitor } from "../types.js";
import { accountStore } from "./accounts.js";
import { blockListStore } from "./block-lists.js";
import { conversationStore } from "./conversations.js";
import type { Db } from "./db.js";
import { mapStore, prepareMap } from "./map.js";
import { rosterStore } from "./roster.js";
import { sqliteLockRunner, type LockRunner } from "../locks.js";
import { timelineStore } from "./timeline.js";

export interface SqliteStoreOptions {
  /** A file path (parent directories are created) or ":memory:". */
  path: string;
  /** Apply pending migrations (default true). When false, a database that needs them is refused. */
  migrate?: boolean;
}

export function openSqliteStore(opts: SqliteStoreOptions): Store {
  if (opts.path !== ":memory:" && opts.path !== "") mkdirSync(dirname(resolve(opts.path)), { recursive: true });
  const db = new Database(opts.path);
  try {
    db.pragma("busy_timeout = 5000");
    db.pragma("journal_mode = WAL");
    // In WAL mode, NORMAL writes every commit to the WAL before returning but fsyncs only at checkpoints:
    // a commit survives the process crashing (what we promise when we acknowledge a message); an OS crash
    // or power cut may lose the last commits, never the database's consistency. FULL would fsync each
    // commit; group commit keeps that affordable if stronger durability is ever wanted.
    db.pragma("synchronous = NORMAL");
    db.pragma("foreign_keys = ON");
    // 16 MiB for reads and the other contracts; the timeline writer thread has 48 MiB of its own
    // (timeline-worker.ts) for the index pages its batches touch.
    db.pragma("cache_size = -16384");
    applyMigrations(db, opts.migrate ?? true);
    const file = opts.path === ":memory:" || opts.path === "" ? null : opts.path;
    // The timeline writer thread runs the checkpoints (timeline-worker.ts); a commit here never does.
    if (file !== null) db.pragma("wal_autocheckpoint = 0");
    return createStore(db, file, sqliteLockRunner(file === null ? ":memory:" : resolve(file)));
  } catch (err) {
    db.close();
    throw err;
  }
}

/** Applies the pending migrations of a database file without opening a store (`hearth migrate`). */
export function migrateSqlite(path: string): MigrationReport {
  if (path !== ":memory:" && path !== "") mkdirSync(dirname(resolve(path)), { recursive: true });
  const db = new Database(path);
  try {
    db.pragma("busy_timeout = 5000");
    db.pragma("journal_mode = WAL");
    return applyMigrations(db, true);
  } finally {
    db.close();
  }
}

function applyMigrations(db: Db, allowed: boolean): MigrationReport {
  const migrations = listMigrations("sqlite");
  const newest = migrations.length === 0 ? 0 : migrations[migrations.length - 1].version;
  const current = (): number => {
    const table = db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'").get();
    if (table === undefined) return 0;
    return db.prepare<[], number>("SELECT coalesce(max(version), 0) FROM schema_version").pluck().get() ?? 0;
  };
  const from = current();
  const todo = migrationsToApply(from, migrations);
  const applied: string[] = [];
  if (todo.length === 0) return { from, to: from, applied };
  if (!allowed) throw new SchemaOutdatedError(from, newest);
  db.exec("CREATE TABLE IF NOT EXISTS schema_version " +
    "(version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)");
  const record = db.prepare<[number, string, number]>(
    "INSERT INTO schema_version (version, name, applied_at) VALUES (?, ?, ?)");
  for (const migration of todo) {
    // IMMEDIATE takes the write lock first; another process may have applied this one while we waited.
    db.transaction(() => {
      if (current() >= migration.version) return;
      db.exec(migration.sql);
      record.run(migration.version, migration.name, Date.now());
      applied.push(`${String(migration.version).padStart(4, "0")}_${migration.name}`);
    }).immediate();
  }
  return { from, to: current(), applied };
}

function createStore(db: Db, file: string | null, lock: LockRunner): Store {
  const monitor: StoreMonitor = { onCommit: null, pool: () => null };
  const timeline = timelineStore(db, file, monitor);
  const mapStatements = prepareMap(db);
  const maps = new Map<string, MapStore>();
  const map = (storeName: string): MapStore => {
    let store = maps.get(storeName);
    if (store === undefined) maps.set(storeName, store = mapStore(db, storeName, mapStatements, timeline.putIf));
    return store;
  };
  let closed = false;
  return {
    driver: "sqlite",
    monitor,
    accounts: accountStore(db, timeline.drain),
    roster: rosterStore(db, lock),
    timeline: timeline.store,
    blockLists: blockListStore(db),
    conversations: conversationStore(db),
    keyValue: map,
    map,
    async close() {
      if (closed) return;
      closed = true;
      await timeline.close();
      db.close();
    },
  };
}
