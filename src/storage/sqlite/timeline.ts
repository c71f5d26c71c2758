// The timeline (DESIGN.md "the timeline"), group-committed: every append() of an event-loop turn is written
// in one transaction.
import type Database from "better-sqlite3";
import { fulltextTerms, matchesFulltext } from "../fulltext.js";
import { TIMELINE_COLUMNS, toTimelineEntry, type TimelineRow as Row } from "../rows.js";
import type { TimelineEntry, TimelineFilter, TimelineQuery, TimelineStore, StoreMonitor } from "../types.js";
import {
  EXPIRE_BATCH, expireInBatches, refuseAppend, queryLimit, type AppendResult, type QueuedAppend,
} from "../validate.js";
import { settle, type Db } from "./db.js";

type TimelineRow = Row<number>;

// Bits of a query's shape: each combination of filters gets its own statement, prepared on first use.
const WITH = 1, AFTER = 2, BEFORE = 4, START = 8, END = 16, REVERSE = 32, ARCHIVED = 64, FULLTEXT = 128, IDS = 256,
  COUNT = 512;

export function timelineStore(db: Db, monitor: StoreMonitor): { store: TimelineStore; flush(): void; close(): void } {
  const insert = db.prepare<[string, number, string, number, string, string | null, number, string, number, number, string | null]>(
    `INSERT INTO timeline (${TIMELINE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
     ON CONFLICT (owner, peer, origin_id) WHERE outgoing = 1 AND origin_id IS NOT NULL DO NOTHING
     ON CONFLICT (owner, peer, origin_id) WHERE outgoing = 0 AND origin_id IS NOT NULL DO NOTHING`);
  const selectOutgoingByOrigin = db.prepare<[string, string, string | null], TimelineRow>(
    `SELECT ${TIMELINE_COLUMNS} FROM timeline WHERE owner = ? AND outgoing = 1 AND peer = ? AND origin_id = ?`);
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
  const expireBatch = (unarchivedOnly: boolean) => db.prepare<[number, number]>(
    `DELETE FROM timeline WHERE (owner, seq) IN (SELECT owner, seq FROM timeline
       INDEXED BY ${unarchivedOnly ? "timeline_unarchived" : "timeline_ts"}
       WHERE ts < ? AND pending = 0${unarchivedOnly ? " AND archived = 0" : ""} LIMIT ?)`);
  const expireAll = expireBatch(false), expireUnarchived = expireBatch(true);
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
            ? selectOutgoingByOrigin.get(e.owner, e.peer, originId)
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
    const started = monitor.onCommit === null ? 0 : performance.now();
    try {
      written = writeBatch.immediate(batch);
    } catch (err) {
      for (const call of batch) call.reject(err);
      return;
    }
    monitor.onCommit?.(batch.length, (performance.now() - started) / 1000);
    for (const [owner, seq] of written.allocated) lastSeqs.set(owner, seq);
    for (let i = 0; i < batch.length; i++) batch[i].resolve(written.results[i]);
  }
  function onImmediate(): void {
    scheduled = null;
    flush();
  }

  // Reads first commit the appends queued before them, so that a reader sees every append issued earlier
  // (e.g. an offline message queued just before its recipient asks for pending messages).
  const read = <T>(compute: () => T): Promise<Awaited<T>> => settle(() => {
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
      const refused = refuseAppend(entries, closed);
      if (refused !== null) return refused;
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
    expire: (retention) => read(() => expireInBatches(retention, (before, unarchivedOnly) =>
      (unarchivedOnly ? expireUnarchived : expireAll).run(before, EXPIRE_BATCH).changes)),
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

