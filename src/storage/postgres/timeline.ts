// The timeline (DESIGN.md "the timeline"), group-committed: the append() calls of one event-loop turn are
// written by one statement.
import type pg from "pg";
import { fulltextTerms } from "../fulltext.js";
import { TIMELINE_COLUMNS, toTimelineEntry, type TimelineRow as Row } from "../rows.js";
import { splitStanzaIds, type StanzaIds } from "../stanza-ids.js";
import type { AppendResult, NewTimelineEntry, TimelineEntry, TimelineFilter, TimelineQuery, TimelineStore, StoreMonitor } from "../types.js";
import {
  EXPIRE_BATCH, expireInBatches, refuseAppend, answerLater, queryLimit, type QueuedAppend,
} from "../validate.js";
import { DEADLOCK, MAX_ATTEMPTS, SERIALIZATION, statement, UNIQUE_VIOLATION } from "./pool.js";

type TimelineRow = Row<boolean>;

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
      ON t.owner = i.owner AND t.outgoing AND t.origin_id IS NOT NULL AND t.peer = i.peer AND t.origin_id = i.origin_id
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

// Unique violations worth retrying a batch for: a concurrent resend (unique origin-id).
const RETRIED_CONSTRAINTS = new Set(["timeline_outgoing_origin", "timeline_incoming_origin"]);

const originKey = (e: NewTimelineEntry): string | null =>
  e.originId == null ? null : `${e.outgoing ? "o" : "i"}\0${e.owner}\0${e.peer}\0${e.originId}`;

async function writeBatch(pool: pg.Pool, batch: QueuedAppend[], ids: StanzaIds): Promise<AppendResult[][]> {
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
    cols.owner[u] = e.owner; cols.peer[u] = e.peer; cols.outgoing[u] = e.outgoing; cols.stanzaId[u] = e.stanzaId ?? "";
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
    else uniqueResults[row.k!] = { ...toTimelineEntry(row, ids), duplicate: true };
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
      owner, peer: cols.peer[u], outgoing: cols.outgoing[u], stanzaId: cols.stanzaId[u] === "" ? ids.encode(owner, seq) : cols.stanzaId[u], originId: cols.originId[u],
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
function filterSql(owner: string, q: TimelineFilter, params: unknown[], ids: StanzaIds): string {
  const p = (value: unknown): string => { params.push(value); return `$${params.length}`; };
  let sql = `owner = ${p(owner)}`;
  if (q.with != null) sql += ` AND peer = ${p(q.with)}`;
  if (q.afterSeq != null) sql += ` AND seq > ${p(q.afterSeq)}`;
  if (q.beforeSeq != null) sql += ` AND seq < ${p(q.beforeSeq)}`;
  if (q.start != null) sql += ` AND ts >= ${p(q.start)}`;
  if (q.end != null) sql += ` AND ts <= ${p(q.end)}`;
  if (q.archivedOnly === true) sql += " AND archived";
  if (q.stanzaIds != null) {
    // Derived ids name rows by seq; stored ones are in the (partial) stanza-id index.
    const { seqs, stored } = splitStanzaIds(ids, owner, q.stanzaIds);
    sql += ` AND (stanza_id <> '' AND stanza_id = ANY(${p(stored)}::text[]) OR stanza_id = '' AND seq = ANY(${p(seqs)}::bigint[]))`;
  }
  const words = tsquery(q.fulltext);
  if (words !== null) {
    sql += ` AND search_text IS NOT NULL AND hearth_search_vector(search_text) @@ to_tsquery('simple', ${p(words)})`;
  }
  return sql;
}

export function timelineStore(pool: pg.Pool, maxInFlight: number, monitor: StoreMonitor, ids: StanzaIds): { store: TimelineStore; written(): Promise<void>; close(): Promise<void> } {
  const selectPending = statement("timeline-pending",
    `SELECT ${TIMELINE_COLUMNS} FROM timeline WHERE owner = $1 AND pending ORDER BY seq LIMIT $2`);
  const countPending = statement("timeline-count-pending", "SELECT count(*) AS n FROM timeline WHERE owner = $1 AND pending");
  const clearPending = statement("timeline-delivered",
    "UPDATE timeline SET pending = false WHERE owner = $1 AND seq = ANY($2::bigint[]) AND pending");
  const setPending = statement("timeline-undelivered",
    "UPDATE timeline SET pending = true WHERE owner = $1 AND seq = ANY($2::bigint[]) AND NOT pending");
  const selectByStanzaId = statement("timeline-by-stanza-id",
    `SELECT ${TIMELINE_COLUMNS} FROM timeline WHERE owner = $1 AND stanza_id = $2 AND stanza_id <> ''`);
  const selectDerived = statement("timeline-by-derived-stanza-id",
    `SELECT ${TIMELINE_COLUMNS} FROM timeline WHERE owner = $1 AND seq = $2 AND stanza_id = ''`);
  const selectLastSeq = statement("timeline-last-seq", "SELECT last_seq FROM timeline_seq WHERE owner = $1");
  const expireSql = (unarchivedOnly: boolean): string =>
    `DELETE FROM timeline WHERE ctid = ANY(ARRAY(SELECT ctid FROM timeline WHERE ts < $1 AND NOT pending` +
    `${unarchivedOnly ? " AND NOT archived" : ""} LIMIT ${EXPIRE_BATCH}))`;
  const expireAll = statement("timeline-expire", expireSql(false));
  const expireUnarchived = statement("timeline-expire-unarchived", expireSql(true));

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
    const started = monitor.onCommit === null ? 0 : performance.now();
    const writing = writeBatch(pool, batch, ids).then(
      (results) => {
        monitor.onCommit?.(batch.length, (performance.now() - started) / 1000);
        for (let i = 0; i < batch.length; i++) batch[i].sink.committed(results[i]);
      },
      (err: unknown) => { for (const call of batch) call.sink.failed(err); },
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
    (await pool.query<TimelineRow>(q)).rows.map((row) => toTimelineEntry(row, ids));

  const store: TimelineStore = {
    // Batches written at once by several connections take their seqs in whichever order they commit.
    appendsInOrder: maxInFlight === 1,
    append: (entries) => new Promise((resolve, reject) => store.appendTo(entries, { committed: resolve, failed: reject })),
    appendTo(entries, sink) {
      const refused = refuseAppend(entries, closed);
      if (refused !== null) return answerLater(refused, sink);
      if (queueDone === null) {
        let resolveDone!: () => void;
        queueDone = { promise: new Promise<void>((r) => { resolveDone = r; }), resolve: () => resolveDone() };
      }
      queue.push({ entries, sink });
      schedule();
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
      const where = filterSql(owner, q, params, ids);
      params.push(queryLimit(q.limit));
      return rowsOf({
        text: `SELECT ${TIMELINE_COLUMNS} FROM timeline WHERE ${where} ORDER BY seq${q.reverse === true ? " DESC" : ""} LIMIT $${params.length}`,
        values: params,
      });
    }),
    count: (owner, filter) => read(async () => {
      const params: unknown[] = [];
      const where = filterSql(owner, filter, params, ids);
      return (await pool.query<{ n: number }>({ text: `SELECT count(*) AS n FROM timeline WHERE ${where}`, values: params })).rows[0].n;
    }),
    byStanzaId: (owner, stanzaId) => read(async () => {
      const seq = ids.decode(owner, stanzaId);
      const derived = seq === null ? undefined : (await rowsOf(selectDerived([owner, seq])))[0];
      return derived ?? (await rowsOf(selectByStanzaId([owner, stanzaId])))[0] ?? null;
    }),
    lastSeq: (owner) => read(async () => (await pool.query<{ last_seq: number }>(selectLastSeq([owner]))).rows[0]?.last_seq ?? 0),
    expire: (retention) => read(() => expireInBatches(retention, async (before, unarchivedOnly) =>
      (await pool.query((unarchivedOnly ? expireUnarchived : expireAll)([before]))).rowCount ?? 0)),
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

