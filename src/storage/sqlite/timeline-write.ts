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

/** Values per entry in a packed batch. */
const STRIDE = 10;
/** In a packed batch: the same text as the previous entry's (the two rows of a message share it). */
const SAME = 0;

/**
 * A batch as it crosses to the writer thread: the entries of every append() call as one flat array of
 * primitives (owner, peer, outgoing, stanza-id or "" for one derived from the seq, origin-id, ts, xml,
 * pending, archived, search text), and the number of entries of each call. Cloning primitives costs far
 * less than cloning an object per entry, and the stanza text both rows of a message share is sent once.
 */
export interface PackedBatch { sizes: number[]; values: unknown[] }

/** The owners a packed batch writes rows for. */
export function ownersOf(batch: PackedBatch, into: Set<string>): void {
  for (let v = 0; v < batch.values.length; v += STRIDE) into.add(batch.values[v] as string);
}

export function packBatch(batch: NewTimelineEntry[][]): PackedBatch {
  const sizes: number[] = new Array(batch.length);
  const values: unknown[] = [];
  let prev: NewTimelineEntry | null = null;
  for (let i = 0; i < batch.length; i++) {
    const entries = batch[i];
    sizes[i] = entries.length;
    for (let j = 0; j < entries.length; j++) {
      const e = entries[j];
      const searchText = e.searchText ?? null;
      values.push(e.owner, e.peer, e.outgoing, e.stanzaId ?? "", e.originId ?? null, e.ts,
        prev !== null && prev.xml === e.xml ? SAME : e.xml, e.pending, e.archived ?? true,
        prev !== null && searchText !== null && (prev.searchText ?? null) === searchText ? SAME : searchText);
      prev = e;
    }
  }
  return { sizes, values };
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
  const selectCounter = db.prepare<[string], number>("SELECT last_seq FROM timeline_seq WHERE owner = ?").pluck();
  const upsertCounter = db.prepare<[string, number]>(
    "INSERT INTO timeline_seq (owner, last_seq) VALUES (?, ?) ON CONFLICT (owner) DO UPDATE SET last_seq = excluded.last_seq");

  // The last seq allocated per owner, as committed. Only this writer allocates seqs (SQLite is the
  // single-node store), so after the first read the counter row needs no SELECT per message.
  const lastSeqs = new Map<string, number>();
  const lastAllocated = (owner: string): number => {
    let last = lastSeqs.get(owner);
    if (last === undefined) {
      last = selectCounter.get(owner) ?? 0;
      if (cached) lastSeqs.set(owner, last);
    }
    return last;
  };

  // The new last seqs become the cached counters only once the transaction has committed: a failed batch
  // leaves them untouched.
  const writeBatch = db.transaction(({ sizes, values }: PackedBatch, kv: KvPut[]) => {
    const allocated = new Map<string, number>();
    const results: WrittenBatch = new Array(sizes.length);
    let v = 0;
    let xml = "", searchText: string | null = null;
    for (let i = 0; i < sizes.length; i++) {
      const out: (number | TimelineRow)[] = new Array(sizes[i]);
      for (let j = 0; j < out.length; j++, v += STRIDE) {
        const owner = values[v] as string, peer = values[v + 1] as string, outgoing = values[v + 2] as boolean;
        const originId = values[v + 4] as string | null;
        const x = values[v + 6], t = values[v + 9];
        if (x !== SAME) xml = x as string;
        if (t !== SAME) searchText = t as string | null;
        const seq = (allocated.get(owner) ?? lastAllocated(owner)) + 1;
        const written = insert.run(owner, seq, peer, outgoing ? 1 : 0, values[v + 3] as string, originId, values[v + 5] as number,
          xml, values[v + 7] ? 1 : 0, values[v + 8] ? 1 : 0, searchText).changes === 1;
        if (written) {
          allocated.set(owner, seq);
          out[j] = seq;
        } else {
          // A resend: this (owner, peer, origin-id) is stored already, by an earlier batch or earlier in this one.
          const row = outgoing
            ? selectOutgoingByOrigin.get(owner, peer, originId)
            : selectIncomingByOrigin.get(owner, peer, originId);
          if (row === undefined) throw new Error(`timeline: insert for ${owner} ignored, but no row has its origin-id`);
          out[j] = row;
        }
      }
      results[i] = out;
    }
    for (const [owner, seq] of allocated) upsertCounter.run(owner, seq);
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

