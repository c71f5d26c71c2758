// The embedded store: SQLite through better-sqlite3, the default so that `npm start` needs nothing else.
// better-sqlite3 is synchronous, so every method computes its value at once and returns it settled; only
// timeline appends wait, for the group commit at the end of the event-loop turn.
import { mkdirSync } from "node:fs";
import { dirname, resolve } from "node:path";
import Database from "better-sqlite3";
import { listMigrations, migrationsToApply, SchemaOutdatedError } from "./migrate.js";
import { fulltextTerms, matchesFulltext } from "./fulltext.js";
import type {
  Account, AccountStore, KeyValueStore, MigrationReport, NewTimelineEntry, RosterItem, RosterStore, Store, StoredCredentials,
  Subscription, TimelineEntry, TimelineFilter, TimelineQuery, TimelineStore,
} from "./types.js";

type Db = Database.Database;
type AppendResult = TimelineEntry & { duplicate: boolean };

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
    // Timeline writes land in the index pages of every owner a batch touches; keeping those pages cached
    // (64 MiB instead of SQLite's 2 MiB) saves reading them back on the next batch.
    db.pragma("cache_size = -65536");
    applyMigrations(db, opts.migrate ?? true);
    return createStore(db);
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

function createStore(db: Db): Store {
  const timeline = timelineStore(db);
  const accounts = accountStore(db, timeline.flush);
  const roster = rosterStore(db);
  const keyValueStatements = prepareKeyValue(db);
  const keyValueStores = new Map<string, KeyValueStore>();
  let closed = false;
  return {
    driver: "sqlite",
    accounts,
    roster,
    timeline: timeline.store,
    keyValue(storeName) {
      let store = keyValueStores.get(storeName);
      if (store === undefined) keyValueStores.set(storeName, store = keyValueStore(storeName, keyValueStatements));
      return store;
    },
    close() {
      if (closed) return Promise.resolve();
      closed = true;
      timeline.close();
      db.close();
      return Promise.resolve();
    },
  };
}

/** Runs `compute` now and returns its value (or its exception) as a settled promise. */
function settle<T>(compute: () => T): Promise<T> {
  try {
    return Promise.resolve(compute());
  } catch (err) {
    return Promise.reject(err);
  }
}

// ---------------------------------------------------------------------------------------------- accounts

interface AccountRow { host: string; username: string; credentials: string; created_at: number }

function accountStore(db: Db, flushTimeline: () => void): AccountStore {
  const insert = db.prepare<[string, string, string, number]>(
    "INSERT INTO accounts (host, username, credentials, created_at) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING");
  const select = db.prepare<[string, string], AccountRow>(
    "SELECT host, username, credentials, created_at FROM accounts WHERE host = ? AND username = ?");
  const update = db.prepare<[string, string, string]>(
    "UPDATE accounts SET credentials = ? WHERE host = ? AND username = ?");
  const list = db.prepare<[string], string>(
    "SELECT username FROM accounts WHERE host = ? ORDER BY username").pluck();
  const deleteAccount = db.prepare<[string, string]>("DELETE FROM accounts WHERE host = ? AND username = ?");
  const deleteRoster = db.prepare<[string]>("DELETE FROM roster_items WHERE owner = ?");
  const deleteTimeline = db.prepare<[string]>("DELETE FROM timeline WHERE owner = ?");
  const deleteKeyValue = db.prepare<[string]>("DELETE FROM key_value WHERE owner = ?");
  // The timeline seq and roster version counters stay: a re-created account must never reuse them, or a
  // device that synced the old account's seq N (or cached roster version N) would skip new data.
  const deleteAll = db.transaction((host: string, username: string): boolean => {
    const owner = `${username}@${host}`;
    deleteRoster.run(owner);
    deleteTimeline.run(owner);
    deleteKeyValue.run(owner);
    return deleteAccount.run(host, username).changes === 1;
  });

  return {
    create: (host, username, credentials) =>
      settle(() => insert.run(host, username, JSON.stringify(credentials), Date.now()).changes === 1),
    get: (host, username) => settle(() => {
      const row = select.get(host, username);
      if (row === undefined) return null;
      const account: Account = {
        host: row.host,
        username: row.username,
        credentials: JSON.parse(row.credentials) as StoredCredentials,
        createdAt: row.created_at,
      };
      return account;
    }),
    setCredentials: (host, username, credentials) =>
      settle(() => update.run(JSON.stringify(credentials), host, username).changes === 1),
    delete: (host, username) => settle(() => {
      flushTimeline(); // appends queued for this account must not land after its rows are gone
      return deleteAll.immediate(host, username);
    }),
    list: (host) => settle(() => list.all(host)),
  };
}

// ------------------------------------------------------------------------------------------------ roster

interface RosterRow {
  contact: string; name: string | null; subscription: Subscription; ask_out: number; pending_in: string | null;
  approved: number; in_roster: number; groups_json: string;
}
const ROSTER_COLUMNS = "contact, name, subscription, ask_out, pending_in, approved, in_roster, groups_json";

function toRosterItem(row: RosterRow): RosterItem {
  return {
    jid: row.contact,
    name: row.name,
    subscription: row.subscription,
    askOut: row.ask_out === 1,
    pendingIn: row.pending_in,
    approved: row.approved === 1,
    inRoster: row.in_roster === 1,
    groups: JSON.parse(row.groups_json) as string[],
  };
}

function rosterStore(db: Db): RosterStore {
  const selectItems = db.prepare<[string], RosterRow>(
    `SELECT ${ROSTER_COLUMNS} FROM roster_items WHERE owner = ? ORDER BY contact`);
  const selectItem = db.prepare<[string, string], RosterRow>(
    `SELECT ${ROSTER_COLUMNS} FROM roster_items WHERE owner = ? AND contact = ?`);
  const selectVersion = db.prepare<[string], number>(
    "SELECT version FROM roster_versions WHERE owner = ?").pluck();
  const upsertItem = db.prepare<[string, string, string | null, string, number, string | null, number, number, string]>(
    `INSERT INTO roster_items (owner, ${ROSTER_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
     ON CONFLICT (owner, contact) DO UPDATE SET name = excluded.name, subscription = excluded.subscription,
       ask_out = excluded.ask_out, pending_in = excluded.pending_in, approved = excluded.approved,
       in_roster = excluded.in_roster, groups_json = excluded.groups_json`);
  const deleteItem = db.prepare<[string, string]>("DELETE FROM roster_items WHERE owner = ? AND contact = ?");
  const bumpVersion = db.prepare<[string], number>(
    `INSERT INTO roster_versions (owner, version) VALUES (?, 1)
     ON CONFLICT (owner) DO UPDATE SET version = version + 1 RETURNING version`).pluck();

  const version = (owner: string): number => selectVersion.get(owner) ?? 0;
  const put = db.transaction((owner: string, item: RosterItem): number => {
    upsertItem.run(owner, item.jid, item.name, item.subscription, item.askOut ? 1 : 0, item.pendingIn,
      item.approved ? 1 : 0, item.inRoster ? 1 : 0, JSON.stringify(item.groups));
    return bumpVersion.get(owner)!;
  });
  const remove = db.transaction((owner: string, contact: string): number =>
    deleteItem.run(owner, contact).changes === 0 ? version(owner) : bumpVersion.get(owner)!);
  // One read transaction, so that the version always matches the items.
  const get = db.transaction((owner: string) => ({ version: version(owner), items: selectItems.all(owner).map(toRosterItem) }));

  return {
    get: (owner) => settle(() => get(owner)),
    getItem: (owner, contact) => settle(() => {
      const row = selectItem.get(owner, contact);
      return row === undefined ? null : toRosterItem(row);
    }),
    put: (owner, item) => settle(() => put(owner, item)),
    remove: (owner, contact) => settle(() => remove(owner, contact)),
  };
}

// ---------------------------------------------------------------------------------------------- timeline

interface TimelineRow {
  owner: string; seq: number; peer: string; outgoing: number; stanza_id: string; origin_id: string | null;
  ts: number; xml: string; pending: number; archived: number; search_text: string | null;
}
const TIMELINE_COLUMNS = "owner, seq, peer, outgoing, stanza_id, origin_id, ts, xml, pending, archived, search_text";

function toTimelineEntry(row: TimelineRow): TimelineEntry {
  return {
    owner: row.owner, peer: row.peer, outgoing: row.outgoing === 1, stanzaId: row.stanza_id,
    originId: row.origin_id, ts: row.ts, xml: row.xml, pending: row.pending === 1, seq: row.seq,
    archived: row.archived === 1, searchText: row.search_text,
  };
}

interface QueuedAppend {
  entries: NewTimelineEntry[];
  resolve(results: AppendResult[]): void;
  reject(err: unknown): void;
}

/** Why `entry` cannot be stored, or null. Checked per call so that one bad call cannot fail a batch. */
function invalidEntry(entry: NewTimelineEntry): string | null {
  if (typeof entry !== "object" || entry === null) return "not an object";
  if (typeof entry.owner !== "string") return "owner must be a string";
  if (typeof entry.peer !== "string") return "peer must be a string";
  if (typeof entry.stanzaId !== "string") return "stanzaId must be a string";
  if (entry.originId != null && typeof entry.originId !== "string") return "originId must be a string or null";
  if (typeof entry.ts !== "number" || !Number.isFinite(entry.ts)) return "ts must be a finite number";
  if (typeof entry.xml !== "string") return "xml must be a string";
  if (entry.archived != null && typeof entry.archived !== "boolean") return "archived must be a boolean";
  if (entry.searchText != null && typeof entry.searchText !== "string") return "searchText must be a string or null";
  return null;
}

const PURGE_BATCH = 5_000;

function queryLimit(limit: number): number {
  return limit > 0 ? Math.min(Math.trunc(limit), Number.MAX_SAFE_INTEGER) : 0;
}

// Bits of a query's shape: each combination of filters gets its own statement, prepared on first use.
const WITH = 1, AFTER = 2, BEFORE = 4, START = 8, END = 16, REVERSE = 32, ARCHIVED = 64, FULLTEXT = 128, IDS = 256,
  COUNT = 512;

function timelineStore(db: Db): { store: TimelineStore; flush(): void; close(): void } {
  const insert = db.prepare<[string, number, string, number, string, string | null, number, string, number, number, string | null]>(
    `INSERT INTO timeline (${TIMELINE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
     ON CONFLICT (owner, origin_id) WHERE outgoing = 1 AND origin_id IS NOT NULL DO NOTHING
     ON CONFLICT (owner, peer, origin_id) WHERE outgoing = 0 AND origin_id IS NOT NULL DO NOTHING`);
  const selectOutgoingByOrigin = db.prepare<[string, string | null], TimelineRow>(
    `SELECT ${TIMELINE_COLUMNS} FROM timeline WHERE owner = ? AND outgoing = 1 AND origin_id = ?`);
  const selectIncomingByOrigin = db.prepare<[string, string, string | null], TimelineRow>(
    `SELECT ${TIMELINE_COLUMNS} FROM timeline WHERE owner = ? AND outgoing = 0 AND peer = ? AND origin_id = ?`);
  const selectCounter = db.prepare<[string], number>("SELECT last_seq FROM timeline_seq WHERE owner = ?").pluck();
  const upsertCounter = db.prepare<[string, number]>(
    "INSERT INTO timeline_seq (owner, last_seq) VALUES (?, ?) ON CONFLICT (owner) DO UPDATE SET last_seq = excluded.last_seq");
  const selectPending = db.prepare<[string, number], TimelineRow>(
    `SELECT ${TIMELINE_COLUMNS} FROM timeline INDEXED BY timeline_pending WHERE owner = ? AND pending = 1
     ORDER BY seq LIMIT ?`);
  const countPending = db.prepare<[string], number>(
    "SELECT count(*) FROM timeline WHERE owner = ? AND pending = 1").pluck();
  const clearPending = db.prepare<[string, number]>(
    "UPDATE timeline SET pending = 0 WHERE owner = ? AND seq = ? AND pending = 1");
  const setPending = db.prepare<[string, number]>(
    "UPDATE timeline SET pending = 1 WHERE owner = ? AND seq = ? AND pending = 0");
  const queries = new Map<number, Database.Statement<unknown[], TimelineRow>>();
  const counts = new Map<number, Database.Statement<unknown[], number>>();
  const selectByStanzaId = db.prepare<[string, string], TimelineRow>(
    `SELECT ${TIMELINE_COLUMNS} FROM timeline WHERE owner = ? AND stanza_id = ?`);
  const purgeBatch = (unarchivedOnly: boolean) => db.prepare<[number, number]>(
    `DELETE FROM timeline WHERE (owner, seq) IN (SELECT owner, seq FROM timeline
       INDEXED BY ${unarchivedOnly ? "timeline_unarchived" : "timeline_ts"}
       WHERE ts < ? AND pending = 0${unarchivedOnly ? " AND archived = 0" : ""} LIMIT ?)`);
  const purgeAll = purgeBatch(false), purgeUnarchived = purgeBatch(true);
  // Full-text matching in application code (see schemas/sql/sqlite/0002_archive.sql).
  db.function("hearth_fulltext", { deterministic: true }, (text: unknown, query: unknown) =>
    typeof text === "string" && typeof query === "string" && matchesFulltext(text, query) ? 1 : 0);

  // The last seq allocated per owner, as committed. Only this process writes the file (SQLite is the
  // single-node store), so after the first read the counter row needs no SELECT per message.
  const lastSeqs = new Map<string, number>();
  const lastAllocated = (owner: string): number => {
    let last = lastSeqs.get(owner);
    if (last === undefined) lastSeqs.set(owner, last = selectCounter.get(owner) ?? 0);
    return last;
  };

  // Returns the results per queued call, and the new last seq of every owner written to, which become the
  // committed counters only once the transaction has committed: a failed batch leaves them untouched.
  const writeBatch = db.transaction((batch: QueuedAppend[]) => {
    const allocated = new Map<string, number>();
    const results: AppendResult[][] = new Array(batch.length);
    for (let i = 0; i < batch.length; i++) {
      const entries = batch[i].entries;
      const out: AppendResult[] = new Array(entries.length);
      for (let j = 0; j < entries.length; j++) {
        const e = entries[j];
        const originId = e.originId ?? null;
        const seq = (allocated.get(e.owner) ?? lastAllocated(e.owner)) + 1;
        const archived = e.archived ?? true;
        const searchText = e.searchText ?? null;
        const written = insert.run(e.owner, seq, e.peer, e.outgoing ? 1 : 0, e.stanzaId, originId, e.ts, e.xml,
          e.pending ? 1 : 0, archived ? 1 : 0, searchText).changes === 1;
        if (written) {
          allocated.set(e.owner, seq);
          out[j] = {
            owner: e.owner, peer: e.peer, outgoing: e.outgoing, stanzaId: e.stanzaId, originId, ts: e.ts, xml: e.xml,
            pending: e.pending, archived, searchText, seq, duplicate: false,
          };
        } else {
          // A resend: this (owner, origin-id) is stored already, by an earlier batch or earlier in this one.
          const row = e.outgoing
            ? selectOutgoingByOrigin.get(e.owner, originId)
            : selectIncomingByOrigin.get(e.owner, e.peer, originId);
          if (row === undefined) throw new Error(`timeline: insert for ${e.owner} ignored, but no row has its origin-id`);
          const existing = toTimelineEntry(row) as AppendResult;
          existing.duplicate = true;
          out[j] = existing;
        }
      }
      results[i] = out;
    }
    for (const [owner, seq] of allocated) upsertCounter.run(owner, seq);
    return { results, allocated };
  });

  let queue: QueuedAppend[] = [];
  let scheduled: NodeJS.Immediate | null = null;
  let closed = false;

  // Group commit: every append() of this event-loop turn goes into one transaction. setImmediate rather
  // than queueMicrotask: microtasks run after *each* I/O callback, so a microtask flush would commit the
  // stanzas of one socket read at a time; the check phase runs once after *all* the I/O callbacks of the
  // turn (every socket that had data), and after every promise chain they started, so it batches the
  // whole turn. It adds no wait: with an immediate pending, the loop does not block polling for I/O.
  function flush(): void {
    if (scheduled !== null) {
      clearImmediate(scheduled);
      scheduled = null;
    }
    if (queue.length === 0) return;
    const batch = queue;
    queue = [];
    let written: ReturnType<typeof writeBatch>;
    try {
      written = writeBatch.immediate(batch);
    } catch (err) {
      for (const call of batch) call.reject(err);
      return;
    }
    for (const [owner, seq] of written.allocated) lastSeqs.set(owner, seq);
    for (let i = 0; i < batch.length; i++) batch[i].resolve(written.results[i]);
  }
  function onImmediate(): void {
    scheduled = null;
    flush();
  }

  // Reads first commit the appends queued before them, so that a reader sees every append issued earlier
  // (e.g. an offline message queued just before its recipient asks for pending messages).
  const read = <T>(compute: () => T): Promise<T> => settle(() => {
    if (queue.length !== 0) flush();
    return compute();
  });

  function prepareQuery(shape: number): Database.Statement<unknown[], TimelineRow> {
    // Without statistics the planner would walk the owner's whole timeline by primary key and filter by
    // peer; the index on (owner, peer, seq) reads only the conversation.
    let sql = shape & COUNT ? "SELECT count(*) FROM timeline" : `SELECT ${TIMELINE_COLUMNS} FROM timeline`;
    sql += `${shape & WITH ? " INDEXED BY timeline_peer" : ""} WHERE owner = ?`;
    if (shape & WITH) sql += " AND peer = ?";
    if (shape & AFTER) sql += " AND seq > ?";
    if (shape & BEFORE) sql += " AND seq < ?";
    if (shape & START) sql += " AND ts >= ?";
    if (shape & END) sql += " AND ts <= ?";
    if (shape & ARCHIVED) sql += " AND archived = 1";
    if (shape & IDS) sql += " AND stanza_id IN (SELECT value FROM json_each(?))";
    if (shape & FULLTEXT) sql += " AND hearth_fulltext(search_text, ?)";
    if (shape & COUNT) {
      const statement = db.prepare<unknown[], number>(sql).pluck();
      counts.set(shape, statement);
      return statement as never;
    }
    sql += shape & REVERSE ? " ORDER BY seq DESC LIMIT ?" : " ORDER BY seq LIMIT ?";
    const statement = db.prepare<unknown[], TimelineRow>(sql);
    queries.set(shape, statement);
    return statement;
  }

  /** The shape bits and parameters of a query's filters, in the order prepareQuery writes them. */
  function filterOf(owner: string, q: TimelineFilter): { shape: number; params: unknown[] } {
    let shape = 0;
    const params: unknown[] = [owner];
    if (q.with != null) { shape |= WITH; params.push(q.with); }
    if (q.afterSeq != null) { shape |= AFTER; params.push(q.afterSeq); }
    if (q.beforeSeq != null) { shape |= BEFORE; params.push(q.beforeSeq); }
    if (q.start != null) { shape |= START; params.push(q.start); }
    if (q.end != null) { shape |= END; params.push(q.end); }
    if (q.archivedOnly === true) shape |= ARCHIVED;
    if (q.stanzaIds != null) { shape |= IDS; params.push(JSON.stringify(q.stanzaIds)); }
    if (q.fulltext != null && fulltextTerms(q.fulltext).length !== 0) { shape |= FULLTEXT; params.push(q.fulltext); }
    return { shape, params };
  }

  const markDelivered = db.transaction((owner: string, seqs: number[]) => {
    for (const seq of seqs) clearPending.run(owner, seq);
  });
  const markPending = db.transaction((owner: string, seqs: number[]) => {
    for (const seq of seqs) setPending.run(owner, seq);
  });

  const store: TimelineStore = {
    append(entries) {
      if (closed) return Promise.reject(new Error("timeline: the store is closed"));
      if (entries.length === 0) return Promise.resolve([]);
      for (const entry of entries) {
        const problem = invalidEntry(entry);
        if (problem !== null) return Promise.reject(new TypeError(`timeline: invalid entry: ${problem}`));
      }
      return new Promise((resolve, reject) => {
        queue.push({ entries, resolve, reject });
        if (scheduled === null) scheduled = setImmediate(onImmediate);
      });
    },
    pending: (owner, limit) => read(() => selectPending.all(owner, queryLimit(limit)).map(toTimelineEntry)),
    countPending: (owner) => read(() => countPending.get(owner) ?? 0),
    markDelivered: (owner, seqs) => read(() => {
      if (seqs.length !== 0) markDelivered(owner, seqs);
    }),
    markPending: (owner, seqs) => read(() => {
      if (seqs.length !== 0) markPending(owner, seqs);
    }),
    query: (owner, q: TimelineQuery) => read(() => {
      let { shape, params } = filterOf(owner, q);
      if (q.reverse === true) shape |= REVERSE;
      params.push(queryLimit(q.limit));
      return (queries.get(shape) ?? prepareQuery(shape)).all(...params).map(toTimelineEntry);
    }),
    count: (owner, filter) => read(() => {
      const { shape, params } = filterOf(owner, filter);
      const statement = counts.get(shape | COUNT) ?? (prepareQuery(shape | COUNT) as unknown as Database.Statement<unknown[], number>);
      return statement.get(...params) ?? 0;
    }),
    byStanzaId: (owner, stanzaId) => read(() => {
      const row = selectByStanzaId.get(owner, stanzaId);
      return row === undefined ? null : toTimelineEntry(row);
    }),
    lastSeq: (owner) => read(() => lastAllocated(owner)),
    purge: (opts) => read(() => {
      const statement = opts.unarchivedOnly === true ? purgeUnarchived : purgeAll;
      let removed = 0;
      // In batches, so that a large purge never holds the write lock for long.
      for (;;) {
        const changes = statement.run(opts.before, PURGE_BATCH).changes;
        removed += changes;
        if (changes < PURGE_BATCH) return removed;
      }
    }),
  };

  return {
    store,
    flush,
    close() {
      flush();
      closed = true;
    },
  };
}

// --------------------------------------------------------------------------------------------- key-value

function prepareKeyValue(db: Db) {
  return {
    select: db.prepare<[string, string, string], string>(
      "SELECT value FROM key_value WHERE owner = ? AND store = ? AND key = ?").pluck(),
    upsert: db.prepare<[string, string, string, string]>(
      "INSERT INTO key_value (owner, store, key, value) VALUES (?, ?, ?, ?) " +
      "ON CONFLICT (owner, store, key) DO UPDATE SET value = excluded.value"),
    delete: db.prepare<[string, string, string]>("DELETE FROM key_value WHERE owner = ? AND store = ? AND key = ?"),
  };
}

function keyValueStore(storeName: string, statements: ReturnType<typeof prepareKeyValue>): KeyValueStore {
  return {
    get: (owner, key) => settle(() => statements.select.get(owner, storeName, key) ?? null),
    set: (owner, key, value) => settle(() => {
      if (value === null) statements.delete.run(owner, storeName, key);
      else statements.upsert.run(owner, storeName, key, value);
    }),
  };
}
