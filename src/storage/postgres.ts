// The production store: PostgreSQL through node-postgres (`pg`), pooled. Several server processes may share
// one database: every write that allocates or checks something (timeline seqs, roster versions, resends)
// does it inside one SQL statement, so no process keeps state another one could contradict.
//
// Timeline appends are group-committed like in the SQLite driver: the append() calls of one event-loop turn
// become one statement (one round trip, one commit), and up to `maxInFlight` such batches run at once on
// different pooled connections.
import pg from "pg";
import { listMigrations, migrationsToApply, SchemaOutdatedError } from "./migrate.js";
import { fulltextTerms } from "./fulltext.js";
import type {
  Account, AccountStore, KeyValueStore, MigrationReport, NewTimelineEntry, RosterItem, RosterStore, Store,
  StoredCredentials, Subscription, TimelineEntry, TimelineFilter, TimelineQuery, TimelineStore,
} from "./types.js";

type AppendResult = TimelineEntry & { duplicate: boolean };

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

// int8 columns (seq, ts, counts) as numbers: every value we store is far below 2^53.
const INT8_OID = 20;
const types: pg.CustomTypesConfig = {
  getTypeParser: ((oid: number, format?: "text" | "binary") =>
    oid === INT8_OID ? (value: string) => Number(value) : pg.types.getTypeParser(oid, format)) as pg.CustomTypesConfig["getTypeParser"],
};

function createPool(url: string, poolSize: number): pg.Pool {
  const pool = new pg.Pool({ connectionString: url, max: poolSize, types, application_name: "hearth" } as pg.PoolConfig);
  // An idle connection that fails (server restart, network) is dropped by the pool; the next query opens a
  // new one. Without a listener the 'error' event would end the process.
  pool.on("error", () => {});
  return pool;
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
  return createStore(pool, Math.max(1, opts.maxInFlight ?? Math.floor(poolSize / 2)));
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

function createStore(pool: pg.Pool, maxInFlight: number): Store {
  const timeline = timelineStore(pool, maxInFlight);
  const keyValueStores = new Map<string, KeyValueStore>();
  let closing: Promise<void> | null = null;
  return {
    driver: "postgres",
    accounts: accountStore(pool, timeline.written),
    roster: rosterStore(pool),
    timeline: timeline.store,
    keyValue(storeName) {
      let store = keyValueStores.get(storeName);
      if (store === undefined) keyValueStores.set(storeName, store = keyValueStore(pool, storeName));
      return store;
    },
    close() {
      closing ??= (async () => {
        await timeline.close();
        await pool.end();
      })();
      return closing;
    },
  };
}

/** A named statement: prepared once per pooled connection, then only bound and executed. */
const statement = (name: string, text: string) => (values: unknown[]): pg.QueryConfig => ({ name: `hearth-${name}`, text, values });

// ---------------------------------------------------------------------------------------------- accounts

interface AccountRow { host: string; username: string; credentials: StoredCredentials; created_at: number }

function accountStore(pool: pg.Pool, timelineWritten: () => Promise<void>): AccountStore {
  const insert = statement("account-insert",
    "INSERT INTO accounts (host, username, credentials, created_at) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING");
  const select = statement("account-select",
    "SELECT host, username, credentials, created_at FROM accounts WHERE host = $1 AND username = $2");
  const update = statement("account-update", "UPDATE accounts SET credentials = $3 WHERE host = $1 AND username = $2");
  const list = statement("account-list", "SELECT username FROM accounts WHERE host = $1 ORDER BY username");
  // One statement, so one transaction. The timeline seq and roster version counters stay: a re-created
  // account must never reuse them.
  const deleteAll = statement("account-delete", `WITH
      roster AS (DELETE FROM roster_items WHERE owner = $3),
      timeline AS (DELETE FROM timeline WHERE owner = $3),
      kv AS (DELETE FROM key_value WHERE owner = $3)
    DELETE FROM accounts WHERE host = $1 AND username = $2`);

  return {
    create: async (host, username, credentials) =>
      (await pool.query(insert([host, username, JSON.stringify(credentials), Date.now()]))).rowCount === 1,
    async get(host, username) {
      const { rows } = await pool.query<AccountRow>(select([host, username]));
      if (rows.length === 0) return null;
      const row = rows[0];
      const account: Account = { host: row.host, username: row.username, credentials: row.credentials, createdAt: row.created_at };
      return account;
    },
    setCredentials: async (host, username, credentials) =>
      (await pool.query(update([host, username, JSON.stringify(credentials)]))).rowCount === 1,
    async delete(host, username) {
      await timelineWritten(); // appends queued for this account must not land after its rows are gone
      return (await pool.query(deleteAll([host, username, `${username}@${host}`]))).rowCount === 1;
    },
    list: async (host) => (await pool.query<{ username: string }>(list([host]))).rows.map((r) => r.username),
  };
}

// ------------------------------------------------------------------------------------------------ roster

interface RosterRow {
  contact: string; name: string | null; subscription: Subscription; ask_out: boolean; pending_in: string | null;
  approved: boolean; in_roster: boolean; groups: string[];
}
const ROSTER_COLUMNS = "contact, name, subscription, ask_out, pending_in, approved, in_roster, groups";

function toRosterItem(row: RosterRow): RosterItem {
  return {
    jid: row.contact, name: row.name, subscription: row.subscription, askOut: row.ask_out, pendingIn: row.pending_in,
    approved: row.approved, inRoster: row.in_roster, groups: row.groups,
  };
}

function rosterStore(pool: pg.Pool): RosterStore {
  // Version and items from one statement: one snapshot, so the version always matches the items.
  const selectAll = statement("roster-get", `SELECT v.version, ${ROSTER_COLUMNS.split(", ").map((c) => `r.${c}`).join(", ")}
    FROM (SELECT coalesce((SELECT version FROM roster_versions WHERE owner = $1), 0) AS version) v
    LEFT JOIN roster_items r ON r.owner = $1 ORDER BY r.contact`);
  const selectItem = statement("roster-item", `SELECT ${ROSTER_COLUMNS} FROM roster_items WHERE owner = $1 AND contact = $2`);
  const selectVersion = statement("roster-version", "SELECT version FROM roster_versions WHERE owner = $1");
  const put = statement("roster-put", `WITH item AS (
      INSERT INTO roster_items (owner, ${ROSTER_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
      ON CONFLICT (owner, contact) DO UPDATE SET name = excluded.name, subscription = excluded.subscription,
        ask_out = excluded.ask_out, pending_in = excluded.pending_in, approved = excluded.approved,
        in_roster = excluded.in_roster, groups = excluded.groups)
    INSERT INTO roster_versions AS v (owner, version) VALUES ($1, 1)
    ON CONFLICT (owner) DO UPDATE SET version = v.version + 1 RETURNING version`);
  const remove = statement("roster-remove", `WITH removed AS (DELETE FROM roster_items WHERE owner = $1 AND contact = $2 RETURNING 1)
    INSERT INTO roster_versions AS v (owner, version) SELECT $1, 1 FROM removed
    ON CONFLICT (owner) DO UPDATE SET version = v.version + 1 RETURNING version`);

  const version = async (owner: string): Promise<number> =>
    (await pool.query<{ version: number }>(selectVersion([owner]))).rows[0]?.version ?? 0;

  return {
    async get(owner) {
      const { rows } = await pool.query<RosterRow & { version: number }>(selectAll([owner]));
      return { version: rows[0].version, items: rows.filter((r) => r.contact !== null).map(toRosterItem) };
    },
    async getItem(owner, contact) {
      const { rows } = await pool.query<RosterRow>(selectItem([owner, contact]));
      return rows.length === 0 ? null : toRosterItem(rows[0]);
    },
    put: async (owner, item) => (await pool.query<{ version: number }>(put([owner, item.jid, item.name, item.subscription,
      item.askOut, item.pendingIn, item.approved, item.inRoster, item.groups]))).rows[0].version,
    async remove(owner, contact) {
      const { rows } = await pool.query<{ version: number }>(remove([owner, contact]));
      return rows.length === 0 ? version(owner) : rows[0].version;
    },
  };
}

// ---------------------------------------------------------------------------------------------- timeline

interface TimelineRow {
  owner: string; seq: number; peer: string; outgoing: boolean; stanza_id: string; origin_id: string | null;
  ts: number; xml: string; pending: boolean; archived: boolean; search_text: string | null;
}
const TIMELINE_COLUMNS = "owner, seq, peer, outgoing, stanza_id, origin_id, ts, xml, pending, archived, search_text";

function toTimelineEntry(row: TimelineRow): TimelineEntry {
  return {
    owner: row.owner, peer: row.peer, outgoing: row.outgoing, stanzaId: row.stanza_id, originId: row.origin_id,
    ts: row.ts, xml: row.xml, pending: row.pending, seq: row.seq, archived: row.archived, searchText: row.search_text,
  };
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

interface QueuedAppend {
  entries: NewTimelineEntry[];
  resolve(results: AppendResult[]): void;
  reject(err: unknown): void;
}

// One statement writes a whole batch. `input` is the batch (entries already known to repeat an earlier one
// of the same batch are left out by the caller); `existing` finds the entries stored before (resends);
// `allocated` takes the seqs of the others from the per-owner counters, in owner order so that concurrent
// batches (of this or another process) lock counter rows in one order and cannot deadlock on them; and
// `inserted` numbers each owner's new rows last - n + 1 … last in batch order. The result: one row per
// owner written to (kind 0: its new last seq), and the stored row of every resend (kind 1).
// A resend stored by a concurrent batch after this statement's snapshot makes the insert fail on a unique
// origin-id index; the caller retries, and the retry finds it in `existing`.
const APPEND_SQL = `WITH
  input AS (
    SELECT * FROM unnest($1::text[], $2::text[], $3::boolean[], $4::text[], $5::text[], $6::bigint[], $7::text[],
                         $8::boolean[], $9::boolean[], $10::text[], $11::integer[])
      AS i(owner, peer, outgoing, stanza_id, origin_id, ts, xml, pending, archived, search_text, k)
  ),
  existing AS (
    SELECT i.k, t.* FROM input i JOIN timeline t
      ON t.owner = i.owner AND t.outgoing AND t.origin_id IS NOT NULL AND t.origin_id = i.origin_id
      WHERE i.outgoing
    UNION ALL
    SELECT i.k, t.* FROM input i JOIN timeline t
      ON t.owner = i.owner AND NOT t.outgoing AND t.origin_id IS NOT NULL AND t.peer = i.peer AND t.origin_id = i.origin_id
      WHERE NOT i.outgoing
  ),
  fresh AS (SELECT * FROM input WHERE k NOT IN (SELECT k FROM existing)),
  allocated AS (
    INSERT INTO timeline_seq AS c (owner, last_seq)
    SELECT owner, count(*) FROM fresh GROUP BY owner ORDER BY owner
    ON CONFLICT (owner) DO UPDATE SET last_seq = c.last_seq + excluded.last_seq
    RETURNING owner, last_seq
  ),
  inserted AS (
    INSERT INTO timeline (${TIMELINE_COLUMNS})
    SELECT f.owner, a.last_seq - count(*) OVER (PARTITION BY f.owner) + row_number() OVER (PARTITION BY f.owner ORDER BY f.k),
           f.peer, f.outgoing, f.stanza_id, f.origin_id, f.ts, f.xml, f.pending, f.archived, f.search_text
    FROM fresh f JOIN allocated a USING (owner)
  )
SELECT 0 AS kind, NULL::integer AS k, owner, last_seq AS seq, NULL AS peer, NULL::boolean AS outgoing, NULL AS stanza_id,
       NULL AS origin_id, NULL::bigint AS ts, NULL AS xml, NULL::boolean AS pending, NULL::boolean AS archived,
       NULL AS search_text
  FROM allocated
UNION ALL
SELECT 1, k, ${TIMELINE_COLUMNS} FROM existing`;
const append = statement("timeline-append", APPEND_SQL);

// SQLSTATEs worth retrying a batch for: a concurrent resend (unique origin-id) and deadlocks.
const UNIQUE_VIOLATION = "23505", DEADLOCK = "40P01", SERIALIZATION = "40001";
const RETRIED_CONSTRAINTS = new Set(["timeline_outgoing_origin", "timeline_incoming_origin"]);
const MAX_ATTEMPTS = 5;

const originKey = (e: NewTimelineEntry): string | null =>
  e.originId == null ? null : e.outgoing ? `o\0${e.owner}\0${e.originId}` : `i\0${e.owner}\0${e.peer}\0${e.originId}`;

async function writeBatch(pool: pg.Pool, batch: QueuedAppend[]): Promise<AppendResult[][]> {
  // Flatten; an entry repeating the origin-id of an earlier one in the same batch is answered from it.
  const flat: NewTimelineEntry[] = [];
  const firstOf: number[] = [];            // per flat entry: index of the unique entry it maps to
  const unique: number[] = [];              // unique entry index → flat index
  const seenOrigins = new Map<string, number>();
  for (const call of batch) {
    for (const e of call.entries) {
      const key = originKey(e);
      const earlier = key === null ? undefined : seenOrigins.get(key);
      if (earlier !== undefined) {
        firstOf.push(earlier);
      } else {
        if (key !== null) seenOrigins.set(key, unique.length);
        firstOf.push(unique.length);
        unique.push(flat.length);
      }
      flat.push(e);
    }
  }
  const n = unique.length;
  const cols = {
    owner: new Array<string>(n), peer: new Array<string>(n), outgoing: new Array<boolean>(n), stanzaId: new Array<string>(n),
    originId: new Array<string | null>(n), ts: new Array<number>(n), xml: new Array<string>(n), pending: new Array<boolean>(n),
    archived: new Array<boolean>(n), searchText: new Array<string | null>(n), k: new Array<number>(n),
  };
  for (let u = 0; u < n; u++) {
    const e = flat[unique[u]];
    cols.owner[u] = e.owner; cols.peer[u] = e.peer; cols.outgoing[u] = e.outgoing; cols.stanzaId[u] = e.stanzaId;
    cols.originId[u] = e.originId ?? null; cols.ts[u] = e.ts; cols.xml[u] = e.xml; cols.pending[u] = e.pending;
    cols.archived[u] = e.archived ?? true; cols.searchText[u] = e.searchText ?? null; cols.k[u] = u;
  }
  const values = [cols.owner, cols.peer, cols.outgoing, cols.stanzaId, cols.originId, cols.ts, cols.xml, cols.pending,
    cols.archived, cols.searchText, cols.k];

  let rows: Array<TimelineRow & { kind: number; k: number | null }>;
  for (let attempt = 1; ; attempt++) {
    try {
      rows = (await pool.query<TimelineRow & { kind: number; k: number | null }>(append(values))).rows;
      break;
    } catch (err) {
      const e = err as { code?: string; constraint?: string };
      const retry = e.code === DEADLOCK || e.code === SERIALIZATION ||
        (e.code === UNIQUE_VIOLATION && e.constraint !== undefined && RETRIED_CONSTRAINTS.has(e.constraint));
      if (!retry || attempt >= MAX_ATTEMPTS) throw err;
    }
  }

  // Seqs of the new rows: each owner's, last - n + 1 … last, in batch order.
  const uniqueResults = new Array<AppendResult>(n);
  const lastOf = new Map<string, number>();
  for (const row of rows) {
    if (row.kind === 0) lastOf.set(row.owner, row.seq);
    else uniqueResults[row.k!] = { ...toTimelineEntry(row), duplicate: true };
  }
  const freshCount = new Map<string, number>();
  for (let u = 0; u < n; u++) if (uniqueResults[u] === undefined) freshCount.set(cols.owner[u], (freshCount.get(cols.owner[u]) ?? 0) + 1);
  const nextSeq = new Map<string, number>();
  for (const [owner, count] of freshCount) nextSeq.set(owner, lastOf.get(owner)! - count + 1);
  for (let u = 0; u < n; u++) {
    if (uniqueResults[u] !== undefined) continue;
    const owner = cols.owner[u];
    const seq = nextSeq.get(owner)!;
    nextSeq.set(owner, seq + 1);
    uniqueResults[u] = {
      owner, peer: cols.peer[u], outgoing: cols.outgoing[u], stanzaId: cols.stanzaId[u], originId: cols.originId[u],
      ts: cols.ts[u], xml: cols.xml[u], pending: cols.pending[u], archived: cols.archived[u], searchText: cols.searchText[u],
      seq, duplicate: false,
    };
  }

  const results: AppendResult[][] = new Array(batch.length);
  let i = 0;
  for (let c = 0; c < batch.length; c++) {
    const out: AppendResult[] = new Array(batch[c].entries.length);
    for (let j = 0; j < out.length; j++, i++) {
      const u = firstOf[i];
      // A repeat within the batch is the first one's row, marked as a duplicate.
      out[j] = unique[u] === i ? uniqueResults[u] : { ...uniqueResults[u], duplicate: true };
    }
    results[c] = out;
  }
  return results;
}

function tsquery(fulltext: string | undefined): string | null {
  if (fulltext == null) return null;
  const terms = fulltextTerms(fulltext);
  // Terms are runs of letters and digits only, so quoting them cannot break out of the tsquery syntax.
  return terms.length === 0 ? null : terms.map((t) => `'${t}':*`).join(" & ");
}

/** The WHERE clause of a query's filters; pushes their parameters. */
function filterSql(owner: string, q: TimelineFilter, params: unknown[]): string {
  const p = (value: unknown): string => { params.push(value); return `$${params.length}`; };
  let sql = `owner = ${p(owner)}`;
  if (q.with != null) sql += ` AND peer = ${p(q.with)}`;
  if (q.afterSeq != null) sql += ` AND seq > ${p(q.afterSeq)}`;
  if (q.beforeSeq != null) sql += ` AND seq < ${p(q.beforeSeq)}`;
  if (q.start != null) sql += ` AND ts >= ${p(q.start)}`;
  if (q.end != null) sql += ` AND ts <= ${p(q.end)}`;
  if (q.archivedOnly === true) sql += " AND archived";
  if (q.stanzaIds != null) sql += ` AND stanza_id = ANY(${p(q.stanzaIds)}::text[])`;
  const words = tsquery(q.fulltext);
  if (words !== null) {
    sql += ` AND search_text IS NOT NULL AND hearth_search_vector(search_text) @@ to_tsquery('simple', ${p(words)})`;
  }
  return sql;
}

const PURGE_BATCH = 5_000;

function queryLimit(limit: number): number {
  return limit > 0 ? Math.min(Math.trunc(limit), Number.MAX_SAFE_INTEGER) : 0;
}

function timelineStore(pool: pg.Pool, maxInFlight: number): { store: TimelineStore; written(): Promise<void>; close(): Promise<void> } {
  const selectPending = statement("timeline-pending",
    `SELECT ${TIMELINE_COLUMNS} FROM timeline WHERE owner = $1 AND pending ORDER BY seq LIMIT $2`);
  const countPending = statement("timeline-count-pending", "SELECT count(*) AS n FROM timeline WHERE owner = $1 AND pending");
  const clearPending = statement("timeline-delivered",
    "UPDATE timeline SET pending = false WHERE owner = $1 AND seq = ANY($2::bigint[]) AND pending");
  const setPending = statement("timeline-undelivered",
    "UPDATE timeline SET pending = true WHERE owner = $1 AND seq = ANY($2::bigint[]) AND NOT pending");
  const selectByStanzaId = statement("timeline-by-stanza-id",
    `SELECT ${TIMELINE_COLUMNS} FROM timeline WHERE owner = $1 AND stanza_id = $2`);
  const selectLastSeq = statement("timeline-last-seq", "SELECT last_seq FROM timeline_seq WHERE owner = $1");
  const purgeSql = (unarchivedOnly: boolean): string =>
    `DELETE FROM timeline WHERE ctid = ANY(ARRAY(SELECT ctid FROM timeline WHERE ts < $1 AND NOT pending` +
    `${unarchivedOnly ? " AND NOT archived" : ""} LIMIT ${PURGE_BATCH}))`;
  const purgeAll = statement("timeline-purge", purgeSql(false));
  const purgeUnarchived = statement("timeline-purge-unarchived", purgeSql(true));

  let queue: QueuedAppend[] = [];
  let queueDone: { promise: Promise<void>; resolve(): void } | null = null;
  let scheduled: NodeJS.Immediate | null = null;
  const inFlight = new Set<Promise<void>>();
  let closed = false;

  // Group commit: every append() of this event-loop turn goes into one statement (setImmediate runs after
  // all the I/O callbacks of the turn; see the SQLite driver). While `maxInFlight` batches are being written,
  // new appends wait in the queue and go out together as soon as one batch is done.
  function schedule(): void {
    if (scheduled === null && queue.length !== 0 && inFlight.size < maxInFlight) scheduled = setImmediate(flush);
  }
  function flush(): void {
    if (scheduled !== null) { clearImmediate(scheduled); scheduled = null; }
    if (queue.length === 0 || inFlight.size >= maxInFlight) return;
    const batch = queue;
    const done = queueDone!;
    queue = [];
    queueDone = null;
    const writing = writeBatch(pool, batch).then(
      (results) => { for (let i = 0; i < batch.length; i++) batch[i].resolve(results[i]); },
      (err: unknown) => { for (const call of batch) call.reject(err); },
    ).finally(() => {
      inFlight.delete(writing);
      done.resolve();
      schedule();
    });
    inFlight.add(writing);
  }

  /** Resolves once every append issued so far has been written (or has failed). */
  function written(): Promise<void> {
    const waits = [...inFlight];
    if (queueDone !== null) {
      waits.push(queueDone.promise);
      flush(); // do not wait for the end of the turn
    }
    return waits.length === 0 ? Promise.resolve() : Promise.all(waits).then(() => {});
  }

  // Reads wait for the appends issued before them, so that a reader sees every append issued earlier (e.g.
  // an offline message queued just before its recipient asks for pending messages), as with SQLite.
  const read = async <T>(compute: () => Promise<T>): Promise<T> => {
    if (inFlight.size !== 0 || queue.length !== 0) await written();
    return compute();
  };

  const rowsOf = async (q: pg.QueryConfig): Promise<TimelineEntry[]> =>
    (await pool.query<TimelineRow>(q)).rows.map(toTimelineEntry);

  const store: TimelineStore = {
    append(entries) {
      if (closed) return Promise.reject(new Error("timeline: the store is closed"));
      if (entries.length === 0) return Promise.resolve([]);
      for (const entry of entries) {
        const problem = invalidEntry(entry);
        if (problem !== null) return Promise.reject(new TypeError(`timeline: invalid entry: ${problem}`));
      }
      return new Promise((resolve, reject) => {
        if (queueDone === null) {
          let resolveDone!: () => void;
          queueDone = { promise: new Promise<void>((r) => { resolveDone = r; }), resolve: () => resolveDone() };
        }
        queue.push({ entries, resolve, reject });
        schedule();
      });
    },
    pending: (owner, limit) => read(() => rowsOf(selectPending([owner, queryLimit(limit)]))),
    countPending: (owner) => read(async () => (await pool.query<{ n: number }>(countPending([owner]))).rows[0].n),
    markDelivered: (owner, seqs) => read(async () => {
      if (seqs.length !== 0) await pool.query(clearPending([owner, seqs]));
    }),
    markPending: (owner, seqs) => read(async () => {
      if (seqs.length !== 0) await pool.query(setPending([owner, seqs]));
    }),
    query: (owner, q: TimelineQuery) => read(() => {
      const params: unknown[] = [];
      const where = filterSql(owner, q, params);
      params.push(queryLimit(q.limit));
      return rowsOf({
        text: `SELECT ${TIMELINE_COLUMNS} FROM timeline WHERE ${where} ORDER BY seq${q.reverse === true ? " DESC" : ""} LIMIT $${params.length}`,
        values: params,
      });
    }),
    count: (owner, filter) => read(async () => {
      const params: unknown[] = [];
      const where = filterSql(owner, filter, params);
      return (await pool.query<{ n: number }>({ text: `SELECT count(*) AS n FROM timeline WHERE ${where}`, values: params })).rows[0].n;
    }),
    byStanzaId: (owner, stanzaId) => read(async () => (await rowsOf(selectByStanzaId([owner, stanzaId])))[0] ?? null),
    lastSeq: (owner) => read(async () => (await pool.query<{ last_seq: number }>(selectLastSeq([owner]))).rows[0]?.last_seq ?? 0),
    purge: (opts) => read(async () => {
      const purge = opts.unarchivedOnly === true ? purgeUnarchived : purgeAll;
      let removed = 0;
      // In batches, so that a large purge never holds many row locks or one long transaction.
      for (;;) {
        const count = (await pool.query(purge([opts.before]))).rowCount ?? 0;
        removed += count;
        if (count < PURGE_BATCH) return removed;
      }
    }),
  };

  return {
    store,
    written,
    async close() {
      closed = true;
      // Commit what is still queued, as the SQLite driver does.
      while (queue.length !== 0 || inFlight.size !== 0) await written();
    },
  };
}

// --------------------------------------------------------------------------------------------- key-value

const kvSelect = statement("kv-get", "SELECT value FROM key_value WHERE owner = $1 AND store = $2 AND key = $3");
const kvUpsert = statement("kv-set", "INSERT INTO key_value (owner, store, key, value) VALUES ($1, $2, $3, $4) " +
  "ON CONFLICT (owner, store, key) DO UPDATE SET value = excluded.value");
const kvDelete = statement("kv-delete", "DELETE FROM key_value WHERE owner = $1 AND store = $2 AND key = $3");

function keyValueStore(pool: pg.Pool, storeName: string): KeyValueStore {
  return {
    get: async (owner, key) => (await pool.query<{ value: string }>(kvSelect([owner, storeName, key]))).rows[0]?.value ?? null,
    async set(owner, key, value) {
      if (value === null) await pool.query(kvDelete([owner, storeName, key]));
      else await pool.query(kvUpsert([owner, storeName, key, value]));
    },
  };
}
