// The timeline (DESIGN.md "the timeline"), group-committed: the append() calls of an event-loop turn are
// written in one transaction, in the writer thread (timeline-worker.ts) for a database file. A call
// resolves only after its transaction committed: nothing is delivered or acknowledged before that.
import type Database from "better-sqlite3";
import { fulltextTerms, matchesFulltext } from "../fulltext.js";
import { TIMELINE_COLUMNS, toTimelineEntry } from "../rows.js";
import { splitStanzaIds, stanzaIds, type StanzaIds } from "../stanza-ids.js";
import type { AppendResult, NewTimelineEntry, StoreMonitor, TimelineFilter, TimelineQuery, TimelineStore } from "../types.js";
import {
  EXPIRE_BATCH, expireInBatches, refuseAppend, answerLater, queryLimit, type QueuedAppend,
} from "../validate.js";
import { Worker } from "node:worker_threads";
import { settle, type Db } from "./db.js";
import type { WriterAnswer, WriterRequest } from "./timeline-worker.js";
import { ownersOf, packBatch, packKv, prepareLastSeq, ROWS_COMMITTED, rowsOf, SHARED_STATE_BYTES, timelineWriter, transferablesOf, WAL_RESTART_PENDING, type KvPut, type KvResult, type PackedBatch, type TimelineRow, type WrittenBatch } from "./timeline-write.js";

// Bits of a query's shape: each combination of filters gets its own statement, prepared on first use.
const WITH = 1, AFTER = 2, BEFORE = 4, START = 8, END = 16, REVERSE = 32, ARCHIVED = 64, FULLTEXT = 128, IDS = 256,
  COUNT = 512;

export interface TimelineStoreHandle {
  store: TimelineStore;
  /** Resolves once every append issued so far is committed (or failed). */
  drain(): Promise<void>;
  /**
   * Compare-and-sets of map stores, committed by the timeline's writer in the transaction of the appends
   * of the same turn: off the event loop, and without contending with it for SQLite's write lock.
   */
  putIf(puts: KvPut[]): Promise<Array<string | null>>;
  close(): Promise<void>;
}

/**
 * How every LIMIT here is bound, never as a bare `?`: SQLite plans ORDER BY ... LIMIT with the value of a bare
 * LIMIT parameter, so each new binding expires the statement and every run prepares it again (the pending
 * query of each login took 9.7 µs instead of 1.6). An expression's value is not looked at.
 */
const LIMIT = "CAST(? AS INTEGER)";

/**
 * `path` set (a database file): commits run in a writer thread on a connection of its own, and
 * checkpoints in another thread (the main connection then never checkpoints). Null (":memory:"): on this thread, at the end of the turn.
 */
export function timelineStore(db: Db, path: string | null, monitor: StoreMonitor): TimelineStoreHandle {
  const selectPending = db.prepare<[string, number], TimelineRow>(
    `SELECT ${TIMELINE_COLUMNS} FROM timeline INDEXED BY timeline_pending WHERE owner = ? AND pending = 1
     ORDER BY seq LIMIT ${LIMIT}`);
  const countPending = db.prepare<[string], number>(
    "SELECT count(*) FROM timeline WHERE owner = ? AND pending = 1").pluck();
  // The owners that may have pending rows. Only this process writes the file (SQLite is the single-node
  // store; block lists count on the same), and every pending row it writes passes append() or markPending()
  // here, so the set never misses an owner: the offline check of a login with nothing waiting (nearly every
  // login) runs no statement. An owner leaves it when a query finds nothing pending.
  const pendingOwners = new Set(db.prepare<[], string>(
    "SELECT DISTINCT owner FROM timeline INDEXED BY timeline_pending WHERE pending = 1").pluck().all());
  const clearPending = db.prepare<[string, number]>(
    "UPDATE timeline SET pending = 0 WHERE owner = ? AND seq = ? AND pending = 1");
  const setPending = db.prepare<[string, number]>(
    "UPDATE timeline SET pending = 1 WHERE owner = ? AND seq = ? AND pending = 0");
  const queries = new Map<number, Database.Statement<unknown[], TimelineRow>>();
  const counts = new Map<number, Database.Statement<unknown[], number>>();
  // A derived stanza-id names its row by seq; a stored one is found through the (partial) stanza-id index.
  const ids = stanzaIds(db.prepare<[], Buffer>("SELECT value FROM server_secrets WHERE name = 'stanza-id'").pluck().get()!);
  const toEntry = (row: TimelineRow) => toTimelineEntry(row, ids);
  const selectDerived = db.prepare<[string, number], TimelineRow>(
    `SELECT ${TIMELINE_COLUMNS} FROM timeline WHERE owner = ? AND seq = ? AND stanza_id = ''`);
  const selectByStanzaId = db.prepare<[string, string], TimelineRow>(
    `SELECT ${TIMELINE_COLUMNS} FROM timeline WHERE owner = ? AND stanza_id = ? AND stanza_id <> ''`);
  const expireBatch = (unarchivedOnly: boolean) => db.prepare<[number, number]>(
    `DELETE FROM timeline WHERE (owner, seq) IN (SELECT owner, seq FROM timeline
       INDEXED BY ${unarchivedOnly ? "timeline_unarchived" : "timeline_ts"}
       WHERE ts < ? AND pending = 0${unarchivedOnly ? " AND archived = 0" : ""} LIMIT ${LIMIT})`);
  const expireAll = expireBatch(false), expireUnarchived = expireBatch(true);
  // Full-text matching in application code (see schemas/sql/sqlite/0002_archive.sql).
  db.function("hearth_fulltext", { deterministic: true }, (text: unknown, query: unknown) =>
    typeof text === "string" && typeof query === "string" && matchesFulltext(text, query) ? 1 : 0);

  const lastSeqOf = prepareLastSeq(db);
  const commits = path === null ? directCommits(db) : workerCommits(path, db);

  let queue: QueuedAppend[] = [];
  let kvQueue: Array<{ puts: KvPut[]; resolve(v: Array<string | null>): void; reject(err: Error): void }> = [];
  let scheduled: NodeJS.Immediate | null = null;
  let closed = false;
  let issued = 0; // batches handed to `commits`
  let answered = 0; // batches answered (in order)
  const waiters: { batch: number; wake(): void }[] = [];

  // Group commit: every append() of this event-loop turn goes into one batch. setImmediate rather than
  // queueMicrotask: microtasks run after *each* I/O callback, so a microtask flush would commit the stanzas
  // of one socket read at a time; the check phase runs once after *all* the I/O callbacks of the turn (every
  // socket that had data), and after every promise chain they started, so it batches the whole turn. It adds
  // no wait: with an immediate pending, the loop does not block polling for I/O. While the writer commits a
  // batch, the next turns' appends wait in the queue and go as one batch when it answers: the batch grows
  // with the load, one transaction (and one WAL write) per batch.
  function flush(): void {
    if (scheduled !== null) {
      clearImmediate(scheduled);
      scheduled = null;
    }
    if ((queue.length === 0 && kvQueue.length === 0) || issued - answered >= MAX_IN_FLIGHT) return;
    const calls = queue;
    queue = [];
    const kvCalls = kvQueue;
    kvQueue = [];
    issued++;
    const started = monitor.onCommit === null ? 0 : performance.now();
    const puts: KvPut[] = [];
    for (const c of kvCalls) for (const p of c.puts) puts.push(p);
    commits.submit(packBatch(calls.map((c) => c.entries)), puts, (err, results, kv) => {
      answered++;
      if (err !== null) {
        for (const call of calls) call.sink.failed(err);
        for (const call of kvCalls) call.reject(err);
      } else {
        if (calls.length) monitor.onCommit?.(calls.length, (performance.now() - started) / 1000);
        resolveAppends(calls, results!, ids);
        let at = 0;
        for (const call of kvCalls) {
          call.resolve(call.puts.map((p, i) => { const r = kv![at + i]; return r === true ? p.value : r; }));
          at += call.puts.length;
        }
      }
      while (waiters.length !== 0 && waiters[0].batch <= answered) waiters.shift()!.wake();
      if ((queue.length !== 0 || kvQueue.length !== 0) && scheduled === null) scheduled = setImmediate(onImmediate);
    });
  }
  function onImmediate(): void {
    scheduled = null;
    flush();
  }
  /** Resolves once the appends issued so far (queued ones included) are answered. */
  function drain(): Promise<void> {
    flush();
    const batch = queue.length !== 0 ? issued + 1 : issued;
    if (answered >= batch) return Promise.resolve();
    return new Promise((wake) => waiters.push({ batch, wake }));
  }

  // Reads first commit the appends queued before them, so that a reader sees every append issued earlier
  // (e.g. an offline message queued just before its recipient asks for pending messages).
  const read = <T>(compute: () => T): Promise<Awaited<T>> => {
    flush();
    if (queue.length === 0 && issued === answered) return settle(compute);
    return drain().then(() => settle(compute));
  };

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
    if (shape & IDS) {
      sql += ` AND seq IN (SELECT seq FROM timeline WHERE owner = ? AND stanza_id <> '' AND stanza_id IN (SELECT value FROM json_each(?))
        UNION ALL SELECT value FROM json_each(?))`;
    }
    if (shape & FULLTEXT) sql += " AND hearth_fulltext(search_text, ?)";
    if (shape & COUNT) {
      const statement = db.prepare<unknown[], number>(sql).pluck();
      counts.set(shape, statement);
      return statement as never;
    }
    sql += shape & REVERSE ? ` ORDER BY seq DESC LIMIT ${LIMIT}` : ` ORDER BY seq LIMIT ${LIMIT}`;
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
    if (q.stanzaIds != null) {
      const { seqs, stored } = splitStanzaIds(ids, owner, q.stanzaIds);
      shape |= IDS;
      params.push(owner, JSON.stringify(stored), JSON.stringify(seqs));
    }
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
    // One writer commits the batches in the order they were issued.
    appendsInOrder: true,
    append: (entries) => new Promise((resolve, reject) => store.appendTo(entries, { committed: resolve, failed: reject })),
    appendTo(entries, sink) {
      const refused = refuseAppend(entries, closed);
      if (refused !== null) return answerLater(refused, sink);
      for (let i = 0; i < entries.length; i++) if (entries[i].pending) pendingOwners.add(entries[i].owner);
      queue.push({ entries, sink });
      if (scheduled === null && issued - answered < MAX_IN_FLIGHT) scheduled = setImmediate(onImmediate);
    },
    pending: (owner, limit) => {
      if (!pendingOwners.has(owner)) return Promise.resolve([]);
      return read(() => {
        const rows = selectPending.all(owner, queryLimit(limit));
        // Not while an append is uncommitted: it may hold a pending row of this owner.
        if (rows.length === 0 && queue.length === 0 && issued === answered) pendingOwners.delete(owner);
        return rows.map(toEntry);
      });
    },
    countPending: (owner) => (pendingOwners.has(owner) ? read(() => countPending.get(owner) ?? 0) : Promise.resolve(0)),
    markDelivered: (owner, seqs) => read(() => {
      if (seqs.length !== 0) markDelivered.immediate(owner, seqs);
    }),
    markPending: (owner, seqs) => {
      if (seqs.length !== 0) pendingOwners.add(owner);
      return read(() => {
        if (seqs.length !== 0) markPending.immediate(owner, seqs);
      });
    },
    query: (owner, q: TimelineQuery) => read(() => {
      let { shape, params } = filterOf(owner, q);
      if (q.reverse === true) shape |= REVERSE;
      params.push(queryLimit(q.limit));
      return (queries.get(shape) ?? prepareQuery(shape)).all(...params).map(toEntry);
    }),
    count: (owner, filter) => read(() => {
      const { shape, params } = filterOf(owner, filter);
      const statement = counts.get(shape | COUNT) ?? (prepareQuery(shape | COUNT) as unknown as Database.Statement<unknown[], number>);
      return statement.get(...params) ?? 0;
    }),
    byStanzaId: (owner, stanzaId) => read(() => {
      const seq = ids.decode(owner, stanzaId);
      const row = (seq === null ? undefined : selectDerived.get(owner, seq)) ?? selectByStanzaId.get(owner, stanzaId);
      return row === undefined ? null : toEntry(row);
    }),
    lastSeq: (owner) => read(() => lastSeqOf(owner)),
    expire: (retention) => read(() => expireInBatches(retention, (before, unarchivedOnly) =>
      (unarchivedOnly ? expireUnarchived : expireAll).run(before, EXPIRE_BATCH).changes)),
  };

  return {
    store,
    drain,
    putIf(puts) {
      if (closed) return Promise.reject(new Error("timeline: the store is closed"));
      if (puts.length === 0) return Promise.resolve([]);
      return new Promise((resolve, reject) => {
        kvQueue.push({ puts, resolve, reject });
        if (scheduled === null && issued - answered < MAX_IN_FLIGHT) scheduled = setImmediate(onImmediate);
      });
    },
    async close() {
      closed = true;
      await drain();
      await commits.close();
    },
  };
}

/**
 * Answers each append() call of a committed batch with its rows: the new rows from their entries and seqs,
 * or the stored rows that resends matched. The stanza-ids derived from the new rows' seqs are made for the
 * whole batch at once: one cipher call instead of one per row.
 */
function resolveAppends(calls: QueuedAppend[], written: WrittenBatch, ids: StanzaIds): void {
  const owners: string[] = [];
  const seqs: number[] = [];
  for (let i = 0; i < calls.length; i++) {
    const entries = calls[i].entries, w = written[i];
    for (let j = 0; j < entries.length; j++) {
      if (typeof w[j] === "number" && entries[j].stanzaId == null) { owners.push(entries[j].owner); seqs.push(w[j] as number); }
    }
  }
  const derived = ids.encodeAll(owners, seqs);
  let next = 0;
  for (let i = 0; i < calls.length; i++) {
    const entries = calls[i].entries, w = written[i];
    const out: AppendResult[] = new Array(entries.length);
    for (let j = 0; j < entries.length; j++) {
      const row = w[j];
      if (typeof row !== "number") {
        const existing = toTimelineEntry(row, ids) as AppendResult;
        existing.duplicate = true;
        out[j] = existing;
        continue;
      }
      const e = entries[j];
      out[j] = {
        owner: e.owner, peer: e.peer, outgoing: e.outgoing, stanzaId: e.stanzaId ?? derived[next++], originId: e.originId ?? null, ts: e.ts,
        xml: e.xml, pending: e.pending, archived: e.archived ?? true, searchText: e.searchText ?? null, seq: row, duplicate: false,
      };
    }
    calls[i].sink.committed(out);
  }
}

type Done = (err: Error | null, results: WrittenBatch | null, kv: KvResult[] | null) => void;

export interface Commits {
  submit(batch: PackedBatch, kv: KvPut[], done: Done): void;
  close(): Promise<void>;
}

/** Commits on this thread (":memory:"), answering before submit() returns. */
function directCommits(db: Db): Commits {
  const write = timelineWriter(db);
  return {
    submit(batch, kv, done) {
      let written: ReturnType<typeof write>;
      try {
        written = write(batch, kv);
      } catch (err) {
        done(err instanceof Error ? err : new Error(String(err)), null, null);
        return;
      }
      done(null, written.results, written.kv);
    },
    close: () => Promise.resolve(),
  };
}

/**
 * Batches handed to the writer and not yet answered. Two: while the writer commits one, the next is
 * gathered and handed over, so the writer does not sit idle while the event loop delivers the answered
 * batch (with one, the two threads took turns). The writer still commits them one after the other.
 */
const MAX_IN_FLIGHT = 2;

/** At most this many rows and compare-and-sets in a batch committed on the event loop (workerCommits). */
const INLINE_MAX = 8;
/**
 * At most this much of each second (ms) of the event loop goes to committing batches on it: 200 messages/s
 * take about 50 ms (up to twice that on a busy machine).
 */
const INLINE_BUDGET_MS = 150;

/**
 * Commits in the writer thread (timeline-worker.ts), checkpoints in another. The worker holds the event loop open only while a
 * batch is out. If it dies, every batch out and every later one fails: nothing is acknowledged that is not
 * committed.
 *
 * A small batch while the writer is idle (light load) is committed on the main connection at once instead:
 * a commit of a message or two takes about as long as handing it to the writer and back, and the two thread
 * wake-ups are what a message waits for longest on a busy machine (the writer and the main thread each wait
 * for a core). The same durability (synchronous = NORMAL, answered after the commit); the time spent so is
 * capped per second, so under load every batch goes to the writer. Never both at once: a batch goes inline
 * only when none is out, so the two connections never wait for each other's write lock, and the main
 * connection does not wait for any other (busy_timeout 0 for the attempt; busy, the batch goes to the writer).
 * Nor the first commit after a checkpoint copied the whole WAL: that commit starts the WAL over and syncs
 * its header, an fsync (1 ms on the rig's disk, more on others) that the event loop would wait for.
 * `checkpointRows` and `walBoundFrames` (tests) replace CHECKPOINT_ROWS and WAL_BOUND_FRAMES (timeline-worker.ts).
 */
export function workerCommits(path: string, db: Db, options: { checkpointRows?: number; walBoundFrames?: number } = {}): Commits & { walRestartPending(): boolean } {
  const script = new URL("./timeline-worker.js", import.meta.url);
  const progress = new SharedArrayBuffer(SHARED_STATE_BYTES);
  const shared = new Int32Array(progress);
  // Reads each owner's counter row: the writer allocates most seqs and keeps them cached.
  const inline = timelineWriter(db, false);
  const busyTimeout = db.pragma("busy_timeout", { simple: true }) as number;
  const noWait = db.prepare("PRAGMA busy_timeout = 0");
  const wait = db.prepare(`PRAGMA busy_timeout = ${busyTimeout}`);
  // Owners written inline since the last batch the writer got: their counters in its cache are stale.
  const forget = new Set<string>();
  let budgetFrom = 0;
  let budgetUsed = 0;
  const inlineAllowed = (): boolean => {
    if (budgetUsed < INLINE_BUDGET_MS) return true;
    const now = performance.now();
    if (now - budgetFrom < 1000) return false;
    budgetFrom = now;
    budgetUsed = 0;
    return true;
  };
  /** Commits a batch on this thread; false when the database is busy (another process writing). */
  const commitInline = (batch: PackedBatch, kv: KvPut[], done: Done): boolean => {
    const started = performance.now();
    if (started - budgetFrom >= 1000) { budgetFrom = started; budgetUsed = 0; }
    let written: ReturnType<typeof inline>;
    noWait.get();
    try {
      written = inline(batch, kv);
    } catch (err) {
      if ((err as { code?: string }).code === "SQLITE_BUSY") return false;
      done(err instanceof Error ? err : new Error(String(err)), null, null);
      return true;
    } finally {
      wait.get();
      budgetUsed += performance.now() - started;
    }
    ownersOf(batch, forget);
    Atomics.add(shared, ROWS_COMMITTED, rowsOf(batch));
    done(null, written.results, written.kv);
    return true;
  };
  const worker = new Worker(script, { workerData: { path, role: "writer", progress, walBoundFrames: options.walBoundFrames } });
  worker.unref();
  // Never holds the process open; stopped with the writer.
  const checkpointer = new Worker(script, { workerData: { path, role: "checkpointer", progress, checkpointRows: options.checkpointRows } });
  checkpointer.unref();
  const checkpointerExit = new Promise<void>((resolve) => checkpointer.once("exit", () => resolve()));
  checkpointer.on("error", () => { /* checkpoints are an optimisation; the WAL keeps every commit */ });
  const out = new Map<number, Done>();
  let nextId = 0;
  let dead: Error | null = null;
  let exited = false;
  const exit = new Promise<void>((resolve) => worker.once("exit", () => { exited = true; resolve(); }));
  const fail = (err: Error): void => {
    if (dead === null) dead = err;
    for (const done of out.values()) done(dead, null, null);
    out.clear();
    worker.unref();
  };
  worker.on("message", (answer: WriterAnswer) => {
    const done = out.get(answer.id);
    if (done === undefined) return;
    out.delete(answer.id);
    if (out.size === 0) worker.unref();
    if ("error" in answer) done(new Error(answer.error), null, null);
    else done(null, answer.results, answer.kv);
  });
  worker.on("error", (err) => fail(err));
  worker.on("exit", (code) => fail(new Error(`timeline: the writer thread exited (code ${code})`)));
  return {
    submit(batch, kv, done) {
      if (dead !== null) {
        done(dead, null, null);
        return;
      }
      if (out.size === 0 && rowsOf(batch) + kv.length <= INLINE_MAX && Atomics.load(shared, WAL_RESTART_PENDING) === 0 &&
        inlineAllowed() && commitInline(batch, kv, done)) return;
      const id = nextId++;
      out.set(id, done);
      worker.ref();
      worker.postMessage({ id, batch, kv: packKv(kv), forget: [...forget] } satisfies WriterRequest, transferablesOf(batch));
      forget.clear();
    },
    walRestartPending: () => Atomics.load(shared, WAL_RESTART_PENDING) === 1,
    async close() {
      checkpointer.postMessage("close");
      checkpointer.ref(); // until it has closed its connection
      if (!exited) {
        dead ??= new Error("timeline: the store is closed");
        worker.postMessage("close");
        worker.ref();
        await exit;
      }
      await checkpointerExit;
    },
  };
}

