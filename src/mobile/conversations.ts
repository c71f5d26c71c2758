// Per user and conversation, a small state row (DESIGN.md "the timeline"): read seq, unread count,
// pinned, muted, the peer's read/delivered markers and a version for incremental sync. The rows of one
// user are one key-value document, kept as a view of the timeline: messages are folded into it
// lazily (when the list or a row is read), so the message hot path writes nothing here, and a crash
// between a message and its fold loses nothing (the fold resumes after the last folded seq).
import type { KeyValueStore, TimelineEntry, TimelineStore } from "../storage/types.js";
import { isRetractionXml } from "./bridge.js";

export interface ConversationState {
  /** The newest message's seq (this user's timeline for 1:1, the room's for groups). */
  last: number;
  lastTs: number;
  read: number;
  unread: number;
  pinned: boolean;
  muted: boolean;
  /** List version at which this entry last changed. */
  v: number;
  peerRead: number;
  peerDelivered: number;
  group: boolean;
}

interface IndexDoc {
  /** Current list version. */
  ver: number;
  /** Timeline rows up to this seq are folded in. */
  upTo: number;
  c: Record<string, ConversationState>;
  /** Recalled messages: target seq → seq of the recall event (this user's timeline). */
  r: Record<string, number>;
}

const KEY = "conversations";
const FOLD_BATCH = 1000;
/** Unread counts are recounted up to this; beyond it the count is this. */
export const UNREAD_CAP = 9999;

function fresh(group = false): ConversationState {
  return { last: 0, lastTs: 0, read: 0, unread: 0, pinned: false, muted: false, v: 0, peerRead: 0, peerDelivered: 0, group };
}

/** One async mutex per key: read-modify-write of a user's document never interleaves. */
export class KeyedLock {
  private readonly tails = new Map<string, Promise<unknown>>();

  run<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.tails.get(key) ?? Promise.resolve();
    const next = prev.then(fn, fn);
    const tail = next.then(() => undefined, () => undefined);
    this.tails.set(key, tail);
    void tail.then(() => { if (this.tails.get(key) === tail) this.tails.delete(key); });
    return next;
  }
}

export class ConversationStore {
  private readonly lock = new KeyedLock();
  /** Parsed documents of recently active users (write-through; the store stays the truth). */
  private readonly cache = new Map<string, IndexDoc>();

  /** `skipPeer`: rows with these peers are no conversation (invitations from the group service). */
  constructor(
    private readonly kv: KeyValueStore,
    private readonly timeline: TimelineStore,
    private readonly skipPeer: (peer: string) => boolean = () => false,
    private readonly cacheSize = 2000,
  ) {}

  private async load(owner: string): Promise<IndexDoc> {
    const hit = this.cache.get(owner);
    if (hit) {
      this.cache.delete(owner);
      this.cache.set(owner, hit);
      return hit;
    }
    const raw = await this.kv.get(owner, KEY);
    let doc: IndexDoc = { ver: 0, upTo: 0, c: {}, r: {} };
    if (raw !== null) {
      try {
        const parsed = JSON.parse(raw) as IndexDoc;
        if (parsed && typeof parsed.ver === "number" && parsed.c) doc = { ...doc, ...parsed };
      } catch { /* a damaged document is rebuilt from the timeline */ }
    }
    this.cache.set(owner, doc);
    if (this.cache.size > this.cacheSize) this.cache.delete(this.cache.keys().next().value!);
    return doc;
  }

  private save(owner: string, doc: IndexDoc): Promise<void> {
    return this.kv.set(owner, KEY, JSON.stringify(doc));
  }

  /** Forgets the cached document (the account was deleted). */
  forget(owner: string): void {
    this.cache.delete(owner);
  }

  /** Folds the timeline rows written since the last fold. Returns whether anything changed. */
  private async fold(owner: string, doc: IndexDoc): Promise<boolean> {
    let changed = false;
    const touched = new Set<ConversationState>();
    for (;;) {
      const rows = await this.timeline.query(owner, { afterSeq: doc.upTo, limit: FOLD_BATCH });
      for (const row of rows) this.foldRow(doc, row, touched);
      if (rows.length > 0) { doc.upTo = rows[rows.length - 1]!.seq; changed = true; }
      if (rows.length < FOLD_BATCH) break;
    }
    if (touched.size > 0) {
      doc.ver++;
      for (const c of touched) c.v = doc.ver;
    }
    return changed;
  }

  private foldRow(doc: IndexDoc, row: TimelineEntry, touched: Set<ConversationState>): void {
    if (this.skipPeer(row.peer)) return;
    const c = (doc.c[row.peer] ??= fresh());
    c.last = row.seq;
    c.lastTs = row.ts;
    if (row.outgoing) {
      // Sending a message marks everything before it read.
      c.read = row.seq;
      c.unread = 0;
    } else if (row.seq > c.read && !isRetractionXml(row.xml)) {
      c.unread++;
    }
    touched.add(c);
  }

  private async withDoc<T>(owner: string, fn: (doc: IndexDoc) => Promise<{ value: T; dirty: boolean }>): Promise<T> {
    return this.lock.run(owner, async () => {
      const doc = await this.load(owner);
      const folded = await this.fold(owner, doc);
      const { value, dirty } = await fn(doc);
      if (folded || dirty) await this.save(owner, doc);
      return value;
    });
  }

  /** The version and the conversations changed after `since`, newest activity first. */
  list(owner: string, since: number): Promise<{ version: number; items: Array<[string, ConversationState]> }> {
    return this.withDoc(owner, async (doc) => {
      const items = Object.entries(doc.c).filter(([, c]) => c.v > since).map(([id, c]) => [id, { ...c }] as [string, ConversationState]);
      items.sort((a, b) => b[1].lastTs - a[1].lastTs);
      return { value: { version: doc.ver, items }, dirty: false };
    });
  }

  get(owner: string, id: string): Promise<ConversationState | null> {
    return this.withDoc(owner, async (doc) => ({ value: doc.c[id] ? { ...doc.c[id]! } : null, dirty: false }));
  }

  /**
   * Moves the read seq forward to `seq` (never back). The unread count is recounted from the
   * conversation's rows after it. Returns the state and whether it changed.
   */
  markRead(owner: string, id: string, seq: number, group = false): Promise<{ state: ConversationState; changed: boolean }> {
    return this.withDoc<{ state: ConversationState; changed: boolean }>(owner, async (doc) => {
      const c = (doc.c[id] ??= fresh(group));
      const target = seq;
      if (target <= c.read) return { value: { state: { ...c }, changed: false }, dirty: false };
      c.read = target;
      if (c.read >= c.last) c.unread = 0;
      else if (!group) c.unread = await this.countUnread(owner, id, c.read);
      else c.unread = Math.max(0, c.last - c.read);
      c.v = ++doc.ver;
      return { value: { state: { ...c }, changed: true }, dirty: true };
    });
  }

  private async countUnread(owner: string, peer: string, after: number): Promise<number> {
    const rows = await this.timeline.query(owner, { with: peer, afterSeq: after, limit: UNREAD_CAP });
    let n = 0;
    for (const r of rows) if (!r.outgoing && !isRetractionXml(r.xml)) n++;
    return n;
  }

  update(owner: string, id: string, change: { pinned?: boolean; muted?: boolean }, group = false): Promise<ConversationState> {
    return this.withDoc(owner, async (doc) => {
      const c = (doc.c[id] ??= fresh(group));
      let dirty = false;
      if (change.pinned !== undefined && change.pinned !== c.pinned) { c.pinned = change.pinned; dirty = true; }
      if (change.muted !== undefined && change.muted !== c.muted) { c.muted = change.muted; dirty = true; }
      if (dirty) c.v = ++doc.ver;
      return { value: { ...c }, dirty };
    });
  }

  /** The peer read (or received) this user's messages up to `seq`. */
  peerMarker(owner: string, id: string, kind: "read" | "delivered", seq: number): Promise<ConversationState | null> {
    return this.withDoc(owner, async (doc) => {
      const c = doc.c[id];
      if (!c) return { value: null, dirty: false };
      const key = kind === "read" ? "peerRead" : "peerDelivered";
      if (seq <= c[key]) return { value: null, dirty: false };
      c[key] = seq;
      if (kind === "read" && c.peerDelivered < seq) c.peerDelivered = seq;
      c.v = ++doc.ver;
      return { value: { ...c }, dirty: true };
    });
  }

  /** A group message arrived (groups are not folded from the user's timeline: they have their own). */
  groupActivity(owner: string, id: string, seq: number, ts: number, outgoing: boolean): Promise<void> {
    return this.withDoc(owner, async (doc) => {
      const c = (doc.c[id] ??= fresh(true));
      if (seq <= c.last) return { value: undefined, dirty: false };
      c.last = seq;
      c.lastTs = ts;
      if (outgoing) { c.read = seq; c.unread = 0; } else if (seq > c.read) c.unread++;
      c.v = ++doc.ver;
      return { value: undefined, dirty: true };
    });
  }

  removeGroup(owner: string, id: string): Promise<void> {
    return this.withDoc(owner, async (doc) => {
      if (!doc.c[id]) return { value: undefined, dirty: false };
      delete doc.c[id];
      doc.ver++;
      return { value: undefined, dirty: true };
    });
  }

  /** Records that the message at `target` (this user's timeline) was recalled by the event at `event`. */
  recalled(owner: string, target: number, event: number): Promise<void> {
    return this.withDoc(owner, async (doc) => {
      if (doc.r[target] !== undefined) return { value: undefined, dirty: false };
      doc.r[target] = event;
      return { value: undefined, dirty: true };
    });
  }

  /** Recalled seqs of this user's timeline → the recall event's seq. */
  recalls(owner: string): Promise<Map<number, number>> {
    return this.lock.run(owner, async () => {
      const doc = await this.load(owner);
      return new Map(Object.entries(doc.r ?? {}).map(([k, v]) => [Number(k), v]));
    });
  }
}
