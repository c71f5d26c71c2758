// Where conversation state lives: rows keyed by (owner, peer), a head per owner (list version, how far the
// timeline is folded in) and the recall tombstones of the owner's timeline. `ConversationRows` is the part
// of the store's conversation contract this module uses.
import type { KeyValueStore } from "../../src/storage/types.js";

export interface ConversationState {
  /** The newest message's seq (the owner's timeline for 1:1, the room's for groups). */
  last: number;
  lastTs: number;
  /** Read up to this seq. */
  read: number;
  unread: number;
  pinned: boolean;
  muted: boolean;
  /** The peer read (XEP-0333 displayed) / received the owner's messages up to these seqs. */
  peerRead: number;
  peerDelivered: number;
  group: boolean;
}

/** One conversation row: its state, its peer (bare JID) and the list version at which it last changed. */
export interface Conversation extends ConversationState { peer: string; version: number }
export interface ConversationHead { version: number; foldedUpTo: number }
export type ConversationUpdate = (current: ConversationState | null) => ConversationState | null | undefined;

export interface ConversationRows {
  head(owner: string): Promise<ConversationHead>;
  get(owner: string, peer: string): Promise<Conversation | null>;
  /** The head and the rows changed after version `since`, newest activity first. */
  list(owner: string, since: number): Promise<ConversationHead & { items: Conversation[] }>;
  /** Atomic read-modify-write of one row; a change takes the next list version. */
  update(owner: string, peer: string, fn: ConversationUpdate): Promise<{ conversation: Conversation | null; changed: boolean }>;
  /** Folds timeline rows in, if the head's `foldedUpTo` is still `from`; false when another writer was first. */
  fold(owner: string, from: number, to: number, changes: ReadonlyMap<string, (current: ConversationState | null) => ConversationState>): Promise<boolean>;
  /** Records that the owner's message at `target` was recalled by the event at `event`; false when it was already. */
  recall(owner: string, target: number, event: number): Promise<boolean>;
  recalls(owner: string): Promise<Map<number, number>>;
}

interface Doc {
  ver: number;
  upTo: number;
  c: Record<string, ConversationState & { v: number }>;
  r: Record<string, number>;
}

const stateOf = ({ v: _v, ...state }: ConversationState & { v: number }): ConversationState => state;
const rowOf = (peer: string, c: ConversationState & { v: number }): Conversation => ({ ...stateOf(c), peer, version: c.v });

/**
 * The state as the mobile adapter kept it before it became rows: one JSON document per user (store
 * `mobile:conversations`, key `conversations`). Writes of one user are chained on this node.
 */
export function keyValueConversations(kv: KeyValueStore): ConversationRows {
  const KEY = "conversations";
  const tails = new Map<string, Promise<unknown>>();
  const load = async (owner: string): Promise<Doc> => {
    const raw = await kv.get(owner, KEY);
    const doc: Doc = { ver: 0, upTo: 0, c: {}, r: {} };
    if (raw === null) return doc;
    try {
      const parsed = JSON.parse(raw) as Doc;
      if (parsed && typeof parsed.ver === "number" && parsed.c) return { ...doc, ...parsed, r: parsed.r ?? {} };
    } catch { /* a damaged document is rebuilt from the timeline */ }
    return doc;
  };
  const write = <T>(owner: string, fn: (doc: Doc) => { value: T; dirty: boolean }): Promise<T> => {
    const run = async () => {
      const doc = await load(owner);
      const { value, dirty } = fn(doc);
      if (dirty) await kv.set(owner, KEY, JSON.stringify(doc));
      return value;
    };
    const next = (tails.get(owner) ?? Promise.resolve()).then(run, run);
    const tail = next.then(() => undefined, () => undefined);
    tails.set(owner, tail);
    void tail.then(() => { if (tails.get(owner) === tail) tails.delete(owner); });
    return next;
  };
  return {
    head: async (owner) => { const d = await load(owner); return { version: d.ver, foldedUpTo: d.upTo }; },
    get: async (owner, peer) => { const c = (await load(owner)).c[peer]; return c ? rowOf(peer, c) : null; },
    async list(owner, since) {
      const d = await load(owner);
      const items = Object.entries(d.c).filter(([, c]) => c.v > since).map(([peer, c]) => rowOf(peer, c));
      items.sort((a, b) => b.lastTs - a.lastTs || (a.peer < b.peer ? -1 : 1));
      return { version: d.ver, foldedUpTo: d.upTo, items };
    },
    update: (owner, peer, fn) => write<{ conversation: Conversation | null; changed: boolean }>(owner, (d) => {
      const cur = d.c[peer];
      const next = fn(cur ? stateOf(cur) : null);
      if (next === undefined) return { value: { conversation: cur ? rowOf(peer, cur) : null, changed: false }, dirty: false };
      d.ver++;
      if (next === null) {
        delete d.c[peer];
        return { value: { conversation: null, changed: cur !== undefined }, dirty: true };
      }
      d.c[peer] = { ...next, v: d.ver };
      return { value: { conversation: rowOf(peer, d.c[peer]!), changed: true }, dirty: true };
    }),
    fold: (owner, from, to, changes) => write(owner, (d) => {
      if (d.upTo !== from) return { value: false, dirty: false };
      if (changes.size > 0) d.ver++;
      for (const [peer, fn] of changes) d.c[peer] = { ...fn(d.c[peer] ? stateOf(d.c[peer]!) : null), v: d.ver };
      d.upTo = to;
      return { value: true, dirty: true };
    }),
    recall: (owner, target, event) => write(owner, (d) => {
      if (d.r[target] !== undefined) return { value: false, dirty: false };
      d.r[target] = event;
      return { value: true, dirty: true };
    }),
    recalls: async (owner) => new Map(Object.entries((await load(owner)).r).map(([k, v]) => [Number(k), v])),
  };
}
