// The timeline's group commit itself: one transaction for the appends of a batch. It runs in the writer
// worker (timeline-worker.ts) for a database file, and on the calling thread for ":memory:" (which a second
// connection cannot open).
import { TIMELINE_COLUMNS, type TimelineRow as Row } from "../rows.js";
import type { NewTimelineEntry } from "../types.js";
import type { Db } from "./db.js";

export type TimelineRow = Row<number>;

/**
 * What a batch came to, per append() call and entry: the seq of a new row, or the stored row a resend
 * (same owner, peer and origin-id) matched. Seqs only: the caller has the rest of a new row already, and
 * the answer crosses a thread.
 */
export type WrittenBatch = (number | TimelineRow)[][];

/**
 * The threads' shared state (an Int32Array over a SharedArrayBuffer): the rows the writer committed (written by
 * the writer and by inline commits, read by the checkpointer), and whether the WAL was wholly copied into the
 * database by a checkpoint since the writer's last commit. The next commit then starts the WAL over and
 * syncs its new header (SQLite does at synchronous = NORMAL): the main thread leaves that commit to the
 * writer (timeline.ts), so that the event loop never waits for the disk. And the frames the WAL had at the
 * checkpointer's last checkpoint, written by the checkpointer and read by the writer (timeline-worker.ts).
 */
export const ROWS_COMMITTED = 0, WAL_RESTART_PENDING = 1, WAL_FRAMES = 2;
export const SHARED_STATE_BYTES = 12;

/** Bits of an entry's flags in a packed batch. */
const OUTGOING = 1, PENDING = 2, ARCHIVED = 4, NO_ORIGIN_ID = 8, SAME_XML = 16, NO_SEARCH_TEXT = 32, SAME_SEARCH_TEXT = 64;

/**
 * A batch as it crosses to the writer thread: the entries of every append() call, `sizes[i]` for call i.
 * Per entry, `meta` holds its ts and flags; its strings (owner, peer, stanza-id or "" for one derived from
 * the seq, then the origin-id, the stanza text and the search text unless the flags say it has none or
 * shares the previous entry's, as the two rows of a message do) are one string, `text`, cut by `lengths`.
 * One string and two typed arrays cross a thread for a memcpy each; an array of values, as before, was
 * cloned value by value, which cost the event loop more than building the batch.
 */
export interface PackedBatch { sizes: number[]; meta: Float64Array; lengths: Uint32Array; text: string }

/** An entry of a packed batch as the writer reads it. */
interface PackedEntry {
  owner: string; peer: string; stanzaId: string; originId: string | null; ts: number; xml: string;
  searchText: string | null; outgoing: boolean; pending: boolean; archived: boolean;
}

/** Calls `each` with every entry of the batch, in order (one object, refilled). */
function unpack(batch: PackedBatch, each: (entry: PackedEntry) => void): void {
  const { meta, lengths, text } = batch;
  let at = 0, s = 0;
  const next = (): string => {
    const len = lengths[s++];
    const part = text.slice(at, at + len);
    at += len;
    return part;
  };
  const entry: PackedEntry = {
    owner: "", peer: "", stanzaId: "", originId: null, ts: 0, xml: "", searchText: null, outgoing: false, pending: false, archived: true,
  };
  for (let k = 0; k < meta.length; k += 2) {
    const flags = meta[k + 1];
    entry.owner = next();
    entry.peer = next();
    entry.stanzaId = next();
    entry.originId = flags & NO_ORIGIN_ID ? null : next();
    if (!(flags & SAME_XML)) entry.xml = next();
    if (flags & NO_SEARCH_TEXT) entry.searchText = null;
    else if (!(flags & SAME_SEARCH_TEXT)) entry.searchText = next();
    entry.ts = meta[k];
    entry.outgoing = (flags & OUTGOING) !== 0;
    entry.pending = (flags & PENDING) !== 0;
    entry.archived = (flags & ARCHIVED) !== 0;
    each(entry);
  }
}

/** The owners a packed batch writes rows for. */
export function ownersOf(batch: PackedBatch, into: Set<string>): void {
  unpack(batch, (e) => into.add(e.owner));
}

/** The rows a packed batch writes. */
export function rowsOf(batch: PackedBatch): number {
  return batch.meta.length / 2;
}

/** The buffers of a packed batch, for postMessage to move instead of copy. */
export function transferablesOf(batch: PackedBatch): ArrayBuffer[] {
  return [batch.meta.buffer as ArrayBuffer, batch.lengths.buffer as ArrayBuffer];
}

export function packBatch(batch: NewTimelineEntry[][]): PackedBatch {
  const sizes: number[] = new Array(batch.length);
  let n = 0;
  for (let i = 0; i < batch.length; i++) n += sizes[i] = batch[i].length;
  const meta = new Float64Array(2 * n);
  const parts: string[] = [];
  let prev: NewTimelineEntry | null = null, k = 0;
  for (let i = 0; i < batch.length; i++) {
    const entries = batch[i];
    for (let j = 0; j < entries.length; j++, k += 2) {
      const e = entries[j];
      let flags = (e.outgoing ? OUTGOING : 0) | (e.pending ? PENDING : 0) | ((e.archived ?? true) ? ARCHIVED : 0);
      parts.push(e.owner, e.peer, e.stanzaId ?? "");
      if (e.originId == null) flags |= NO_ORIGIN_ID;
      else parts.push(e.originId);
      if (prev !== null && prev.xml === e.xml) flags |= SAME_XML;
      else parts.push(e.xml);
      const searchText = e.searchText ?? null;
      if (searchText === null) flags |= NO_SEARCH_TEXT;
      else if (prev !== null && (prev.searchText ?? null) === searchText) flags |= SAME_SEARCH_TEXT;
      else parts.push(searchText);
      meta[k] = e.ts;
      meta[k + 1] = flags;
      prev = e;
    }
  }
  const lengths = new Uint32Array(parts.length);
  for (let p = 0; p < parts.length; p++) lengths[p] = parts[p].length;
  return { sizes, meta, lengths, text: parts.join("") };
}

/**
 * The last seq an owner was given: its newest row, or the counter row the trigger of migration 0007 keeps when
 * rows are deleted (so a deleted seq is never handed out again). Commits write no counter row.
 */
export function prepareLastSeq(db: Db) {
  const select = db.prepare<[string, string], number>(
    `SELECT max(coalesce((SELECT max(seq) FROM timeline WHERE owner = ?), 0),
                coalesce((SELECT last_seq FROM timeline_seq WHERE owner = ?), 0))`).pluck();
  return (owner: string): number => select.get(owner, owner)!;
}

export interface TimelineWriter {
  (batch: PackedBatch, kv?: KvPut[]): { results: WrittenBatch; kv: KvResult[] };
  /** Drops the cached counters of owners another connection wrote rows for. */
  forget(owners: Iterable<string>): void;
}

/**
 * `cached`: keep each owner's last seq in memory after its first read, for a connection that is the only
 * one allocating seqs; a connection that writes only now and then reads the counter row every time.
 */
export function timelineWriter(db: Db, cached = true): TimelineWriter {
  const put = kvPutter(db);
  const insert = db.prepare<[string, number, string, number, string, string | null, number, string, number, number, string | null]>(
    `INSERT INTO timeline (${TIMELINE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
     ON CONFLICT (owner, peer, origin_id) WHERE outgoing = 1 AND origin_id IS NOT NULL DO NOTHING
     ON CONFLICT (owner, peer, origin_id) WHERE outgoing = 0 AND origin_id IS NOT NULL DO NOTHING`);
  const selectOutgoingByOrigin = db.prepare<[string, string, string | null], TimelineRow>(
    `SELECT ${TIMELINE_COLUMNS} FROM timeline WHERE owner = ? AND outgoing = 1 AND peer = ? AND origin_id = ?`);
  const selectIncomingByOrigin = db.prepare<[string, string, string | null], TimelineRow>(
    `SELECT ${TIMELINE_COLUMNS} FROM timeline WHERE owner = ? AND outgoing = 0 AND peer = ? AND origin_id = ?`);
  const lastSeqOf = prepareLastSeq(db);

  // The last seq allocated per owner, as committed. Only this writer allocates seqs (SQLite is the
  // single-node store), so after the first read it needs no SELECT per message.
  const lastSeqs = new Map<string, number>();
  const lastAllocated = (owner: string): number => {
    let last = lastSeqs.get(owner);
    if (last === undefined) {
      last = lastSeqOf(owner);
      if (cached) lastSeqs.set(owner, last);
    }
    return last;
  };

  // The new last seqs become the cached counters only once the transaction has committed: a failed batch
  // leaves them untouched.
  const writeBatch = db.transaction((batch: PackedBatch, kv: KvPut[]) => {
    const allocated = new Map<string, number>();
    const written: Array<number | TimelineRow> = [];
    unpack(batch, (e) => {
      const seq = (allocated.get(e.owner) ?? lastAllocated(e.owner)) + 1;
      const inserted = insert.run(e.owner, seq, e.peer, e.outgoing ? 1 : 0, e.stanzaId, e.originId, e.ts, e.xml,
        e.pending ? 1 : 0, e.archived ? 1 : 0, e.searchText).changes === 1;
      if (inserted) {
        allocated.set(e.owner, seq);
        written.push(seq);
        return;
      }
      // A resend: this (owner, peer, origin-id) is stored already, by an earlier batch or earlier in this one.
      const row = e.outgoing
        ? selectOutgoingByOrigin.get(e.owner, e.peer, e.originId)
        : selectIncomingByOrigin.get(e.owner, e.peer, e.originId);
      if (row === undefined) throw new Error(`timeline: insert for ${e.owner} ignored, but no row has its origin-id`);
      written.push(row);
    });
    const results: WrittenBatch = new Array(batch.sizes.length);
    for (let i = 0, at = 0; i < results.length; at += batch.sizes[i], i++) results[i] = written.slice(at, at + batch.sizes[i]);
    return { results, allocated, kv: kv.map(put) };
  });

  const write = (batch: PackedBatch, kv: KvPut[] = []) => {
    const written = writeBatch.immediate(batch, kv);
    if (cached) for (const [owner, seq] of written.allocated) lastSeqs.set(owner, seq);
    return { results: written.results, kv: written.kv };
  };
  return Object.assign(write, { forget(owners: Iterable<string>) { for (const o of owners) lastSeqs.delete(o); } });
}

/** A compare-and-set of one key of a map store (MapStore.putIfMany), run by the writer with the timeline's commits. */
export interface KvPut { store: string; owner: string; key: string; value: string; expect: string | null }

/** Compare-and-sets as one flat list (store, owner, key, value, expect, …): a list of strings crosses to the writer thread cheaper than objects. */
export type PackedKv = Array<string | null>;

export function packKv(puts: readonly KvPut[]): PackedKv {
  const out: PackedKv = new Array(puts.length * 5);
  for (let i = 0, v = 0; i < puts.length; i++, v += 5) {
    const p = puts[i];
    out[v] = p.store; out[v + 1] = p.owner; out[v + 2] = p.key; out[v + 3] = p.value; out[v + 4] = p.expect;
  }
  return out;
}

export function unpackKv(packed: PackedKv): KvPut[] {
  const puts: KvPut[] = [];
  for (let v = 0; v + 4 < packed.length; v += 5) {
    puts.push({ store: packed[v]!, owner: packed[v + 1]!, key: packed[v + 2]!, value: packed[v + 3]!, expect: packed[v + 4] });
  }
  return puts;
}

/**
 * What a compare-and-set came to: `true` when the value given was stored (not copied back across threads),
 * else the value that is stored.
 */
export type KvResult = string | null | true;

/** One compare-and-set (inside the writer's transaction). */
function kvPutter(db: Db): (p: KvPut) => KvResult {
  const select = db.prepare<[string, string, string], string>(
    "SELECT value FROM key_value WHERE owner = ? AND store = ? AND key = ?").pluck();
  // The usual case in one statement each: replacing the value we wrote last, or creating a new key.
  const replace = db.prepare<[string, string, string, string, string]>(
    "UPDATE key_value SET value = ? WHERE owner = ? AND store = ? AND key = ? AND value = ?");
  const create = db.prepare<[string, string, string, string]>(
    "INSERT INTO key_value (owner, store, key, value) VALUES (?, ?, ?, ?) ON CONFLICT (owner, store, key) DO NOTHING");
  return (p) => {
    const done = p.expect === null
      ? create.run(p.owner, p.store, p.key, p.value).changes === 1
      : replace.run(p.value, p.owner, p.store, p.key, p.expect).changes === 1;
    return done ? true : select.get(p.owner, p.store, p.key) ?? null;
  };
}

