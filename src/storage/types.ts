// Store contracts. Drivers (src/storage/sqlite, src/storage/postgres) implement these shapes; features never
// write SQL. Every method is async so that a networked driver fits the same contract; the SQLite driver
// resolves at once, and batches timeline writes per tick into one transaction (group commit).
//
// Ordering. Calls issued together without awaiting have no guaranteed order on a networked driver: each
// may run on its own pooled connection, so a later set() can commit before an earlier one. What the
// contracts guarantee instead: a call that starts after another one resolved sees its effect (on every
// node sharing the database), and each `update` is atomic (see MapStore.update, ConversationStore.update).
// The timeline adds one more: its reads wait for the appends issued earlier on the same store object.

/** Per-hash SCRAM credentials (RFC 5802): salted, never the clear password. */
export interface ScramCredentials { salt: string; iterations: number; storedKey: string; serverKey: string }
export type StoredCredentials = Partial<Record<"SHA-1" | "SHA-256", ScramCredentials>>;

export interface Account { host: string; username: string; credentials: StoredCredentials; createdAt: number }

export interface AccountStore {
  /** false when the account already exists. */
  create(host: string, username: string, credentials: StoredCredentials): Promise<boolean>;
  get(host: string, username: string): Promise<Account | null>;
  setCredentials(host: string, username: string, credentials: StoredCredentials): Promise<boolean>;
  /**
   * Removes the account and everything it owns (roster, timeline, key-value data, block list, conversation
   * rows and recalls). The timeline seq, roster version and conversation list version counters stay, so
   * that a re-created account never hands out a number again.
   */
  delete(host: string, username: string): Promise<boolean>;
  list(host: string): Promise<string[]>;
}

export type Subscription = "none" | "to" | "from" | "both";

/** One row of a user's roster (RFC 6121 §2.1.2), plus the persisted subscription state machine. */
export interface RosterItem {
  jid: string;               // bare JID of the contact
  name: string | null;
  subscription: Subscription;
  askOut: boolean;           // we sent subscribe, no answer yet ("Pending Out")
  pendingIn: string | null;  // an inbound subscribe awaiting the user's decision: the stanza XML ("Pending In")
  approved: boolean;         // pre-approved (RFC 6121 §3.4)
  inRoster: boolean;         // false for rows that only carry pendingIn/approved state and are not shown
  groups: string[];
}

export interface RosterStore {
  get(owner: string): Promise<{ version: number; items: RosterItem[] }>;
  getItem(owner: string, contact: string): Promise<RosterItem | null>;
  /** Inserts or replaces; returns the roster's new version. */
  put(owner: string, item: RosterItem): Promise<number>;
  /** Returns the roster's new version (unchanged when nothing was removed). */
  remove(owner: string, contact: string): Promise<number>;
  /**
   * Runs `fn` (a read-modify-write of `owner`'s roster made of several calls) while no other `lock` of the
   * same owner runs: on this store client, on every other client of the same database, and (PostgreSQL)
   * on every node sharing it. Holders of one owner run in call order per client. Not reentrant.
   */
  lock<T>(owner: string, fn: () => Promise<T>): Promise<T>;
}

/** A message as written into one user's timeline (DESIGN.md "the timeline"). */
export interface NewTimelineEntry {
  owner: string;             // bare JID whose timeline this is
  peer: string;              // bare JID of the other party
  outgoing: boolean;         // owner sent it
  /**
   * XEP-0359 id given by the server. Left out, the store derives it from the row's seq (an encrypted
   * (owner, seq): unpredictable, and no index entry per row); give one only when it must be known before
   * the row is written (MUC broadcasts it first).
   */
  stanzaId?: string;
  originId: string | null;   // client message id (XEP-0359 origin-id); deduplicates resends, see append()
  ts: number;                // ms since epoch
  xml: string;               // the stanza as routed
  pending: boolean;          // no resource has received it yet (offline, XEP-0160)
  /** Shown by MAM (XEP-0313) queries with `archivedOnly`; false when the owner's preferences say never. Default true. */
  archived?: boolean;
  /** The text that full-text search matches (the body), or null (default): never matched. */
  searchText?: string | null;
}
export interface TimelineEntry extends NewTimelineEntry { stanzaId: string; seq: number; archived: boolean; searchText: string | null }
/** What append() answers for an entry: its row, `duplicate` when a stored row with its origin-id answered instead. */
export type AppendResult = TimelineEntry & { duplicate: boolean };

export interface TimelineQuery {
  with?: string;
  afterSeq?: number;
  beforeSeq?: number;
  start?: number;
  end?: number;
  limit: number;
  reverse?: boolean;         // newest first
  /** Only entries with `archived` set (MAM). */
  archivedOnly?: boolean;
  /**
   * Full-text filter: every word of it (letters and digits) must begin a word of the entry's `searchText`,
   * ignoring case. A filter without words filters nothing. Drivers may use a text index.
   */
  fulltext?: string;
  /** Only the entries with these stanza ids. */
  stanzaIds?: string[];
}

/** The filters of a query, without its page: what `count` counts. */
export type TimelineFilter = Omit<TimelineQuery, "limit" | "reverse">;

/** Where an append's answer goes (TimelineStore.appendTo); it must not throw. */
export interface AppendSink {
  /** The append's transaction committed: one row per entry, as append() resolves to. */
  committed(rows: AppendResult[]): void;
  failed(err: unknown): void;
}

export interface TimelineStore {
  /**
   * Writes all entries in one transaction; each gets the next seq of its owner. An entry whose
   * (owner, direction, peer, originId) exists already is not written again: the stored entry is returned in
   * its place. So a resent 1:1 message (same id, same peer) is written once into each timeline, while two
   * senders may choose the same originId, and an id reused for a message to another peer is a new message.
   * The result has one element per input, in order; `duplicate` marks the ones that already existed.
   */
  append(entries: NewTimelineEntry[]): Promise<AppendResult[]>;
  /**
   * append() answering `sink` instead of a promise, never before this call returns: for a caller that keeps
   * thousands of appends waiting at once (each promise and its resolving functions would wait with them).
   */
  appendTo(entries: NewTimelineEntry[], sink: AppendSink): void;
  /**
   * true when appends get their seqs in the order append() was called, whatever the batches they fall in
   * (the batches are committed one after another): a caller may then issue the next append before the
   * previous one is answered and still keep its order. Absent: false.
   */
  readonly appendsInOrder?: boolean;
  pending(owner: string, limit: number): Promise<TimelineEntry[]>;
  countPending(owner: string): Promise<number>;
  markDelivered(owner: string, seqs: number[]): Promise<void>;
  /**
   * Makes entries pending (offline) again: messages handed to a session, or to a cluster node, that ended
   * before receiving them. Seqs that are unknown or of another owner are ignored.
   */
  markPending(owner: string, seqs: number[]): Promise<void>;
  query(owner: string, q: TimelineQuery): Promise<TimelineEntry[]>;
  /** How many entries a query with these filters returns without a limit. */
  count(owner: string, filter: TimelineFilter): Promise<number>;
  /** The owner's entry with this XEP-0359 stanza id, or null. */
  byStanzaId(owner: string, stanzaId: string): Promise<TimelineEntry | null>;
  lastSeq(owner: string): Promise<number>;
  /**
   * Retention: removes the entries of every owner that `retention` no longer keeps, except pending ones
   * (offline messages not yet delivered); returns how many. Seqs are never reused.
   */
  expire(retention: TimelineRetention): Promise<number>;
}

/** How long the timeline keeps entries. Without either field nothing expires. */
export interface TimelineRetention {
  /** Entries older than this (ms since epoch) go, archived or not. */
  before?: number;
  /**
   * Entries that are not archived (kept for offline delivery, resends and device sync only) go once older
   * than this (ms since epoch), usually sooner than archived ones.
   */
  unarchivedBefore?: number;
}

/** Opaque values by (owner, key) in a named store: private XML, vCards, last activity… */
/**
 * Values by (owner, key). Ordering: the calls on one (owner, key) made through one store client take
 * effect in the order they were issued, whether or not the caller waited for the earlier ones: a get sees
 * every set issued before it, and of two sets in flight the later one is what stays. Across store clients
 * (cluster nodes) only `MapStore.update` is ordered; calls on different keys have no order between them.
 */
export interface KeyValueStore {
  get(owner: string, key: string): Promise<string | null>;
  set(owner: string, key: string, value: string | null): Promise<void>;
}

/**
 * What `update` writes, given the current value (null: none): a new value, null to delete it, or undefined
 * to leave it as it is. Synchronous and free of side effects: a driver may call it more than once (after a
 * conflict with a concurrent writer) and only the last call's result is written.
 */
export type MapUpdate = (current: string | null) => string | null | undefined;

/**
 * A named store of opaque values by (owner, key) (the same data as `keyValue` of the same name), with
 * listing by owner and an atomic read-modify-write.
 */
export interface MapStore extends KeyValueStore {
  /** false when there was nothing to delete. */
  delete(owner: string, key: string): Promise<boolean>;
  /** The owner's values by key, keys in ascending order (as JavaScript compares strings, on every driver). */
  list(owner: string): Promise<Map<string, string>>;
  /**
   * Atomic read-modify-write of one (owner, key); resolves to the value now stored. Updates of one (owner,
   * key) are serialized, on one node and across nodes sharing the database: each `fn` sees the value the
   * previous update (or set/delete) committed, so no update is lost. Updates of different keys are
   * independent and have no order between them.
   */
  update(owner: string, key: string, fn: MapUpdate): Promise<string | null>;
  /**
   * Compare-and-set of many keys: each `value` is written where the key's current value is `expect` (null:
   * absent); resolves to the value now stored for each, in order (the new value, or what was there instead).
   * A driver may commit them with its other writes, off the event loop (SQLite: by the timeline's writer
   * thread, with the appends of the same turn), so a batch costs about one share of a commit.
   */
  putIfMany(entries: ReadonlyArray<{ owner: string; key: string; value: string; expect: string | null }>): Promise<Array<string | null>>;
}

/**
 * XEP-0191 block lists as rows: (owner, blocked JID). Items are JIDs as the user gave them (full, bare or
 * domain JIDs); matching an address against them is the caller's (see `isBlocked`).
 */
export interface BlockListStore {
  /** The owner's blocked JIDs, ascending. */
  list(owner: string): Promise<string[]>;
  /** Adds the JIDs; resolves to the ones that were not on the list yet, ascending. */
  add(owner: string, jids: readonly string[]): Promise<string[]>;
  /** Removes the JIDs; resolves to the ones that were on the list, ascending. */
  remove(owner: string, jids: readonly string[]): Promise<string[]>;
  /** Empties the list; resolves to what it held, ascending. */
  clear(owner: string): Promise<string[]>;
  /**
   * Whether any of `jids` is on the owner's list: for delivery, the candidates an address matches (e.g.
   * its full JID, bare JID and domain, XEP-0191 §3.5 with the matching rules of XEP-0016 §2.1). One indexed
   * lookup on every driver. It is asked for nearly every stanza delivered, so a driver that can answer at
   * once (the embedded one) answers synchronously: callers only await a thenable.
   */
  isBlocked(owner: string, jids: readonly string[]): boolean | Promise<boolean>;
}

/** Per user and conversation (DESIGN.md "the timeline"): what the conversation list shows. */
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

/**
 * Per owner: the list version (the highest version any row change was given; it only grows, also across
 * deletions of the account) and how far the owner's timeline has been folded into the rows.
 */
export interface ConversationHead { version: number; foldedUpTo: number }

/** As MapUpdate, for one conversation row: the new state, null to delete the row, undefined to leave it. */
export type ConversationUpdate = (current: ConversationState | null) => ConversationState | null | undefined;

/**
 * Conversation state as rows keyed by (owner, peer), plus per owner a head (list version, fold position) and
 * the recall tombstones of the owner's timeline. Every change of a row gives it the owner's next list
 * version, so a client syncs with `list(owner, lastVersionSeen)`. Writes of one owner are serialized across
 * nodes (they share the version counter); each is atomic.
 */
export interface ConversationStore {
  head(owner: string): Promise<ConversationHead>;
  get(owner: string, peer: string): Promise<Conversation | null>;
  /** The head and the rows changed after version `since`, newest activity (lastTs, then peer) first. */
  list(owner: string, since: number): Promise<ConversationHead & { items: Conversation[] }>;
  /**
   * Atomic read-modify-write of one row (`fn` as MapUpdate's: synchronous, may be called more than once); a
   * change (a different state, or a deletion) takes the next list version, a state equal to the current one
   * is no change. Resolves to the row now stored and whether `fn` changed it.
   */
  update(owner: string, peer: string, fn: ConversationUpdate): Promise<{ conversation: Conversation | null; changed: boolean }>;
  /**
   * Folds timeline rows into the conversation rows: atomically, if the head's `foldedUpTo` is still `from`,
   * applies each function to its peer's row (the rows it changes take one new list version) and sets
   * `foldedUpTo` to `to`. Resolves to false, having changed nothing, when another writer moved `foldedUpTo`
   * first (read the head again and fold from there).
   */
  fold(owner: string, from: number, to: number,
    changes: ReadonlyMap<string, (current: ConversationState | null) => ConversationState>): Promise<boolean>;
  /** Records that the owner's message at seq `target` was recalled by the event at seq `event`; false when it was already. */
  recall(owner: string, target: number, event: number): Promise<boolean>;
  /** The owner's recalled seqs → the recall event's seq. */
  recalls(owner: string): Promise<Map<number, number>>;
}

/** What applying migrations did (`hearth migrate`): versions before and after, and the files applied. */
export interface MigrationReport { from: number; to: number; applied: string[] }

/**
 * What a driver tells the metrics (src/ops/metrics.ts): `onCommit` is called once per timeline group
 * commit while set (null costs nothing), `pool` reads the connection pool when the driver has one.
 */
export interface StoreMonitor {
  onCommit: ((appends: number, seconds: number) => void) | null;
  pool(): { total: number; idle: number; waiting: number } | null;
}

export interface Store {
  readonly driver: string;
  readonly monitor: StoreMonitor;
  readonly accounts: AccountStore;
  readonly roster: RosterStore;
  readonly timeline: TimelineStore;
  readonly blockLists: BlockListStore;
  readonly conversations: ConversationStore;
  /** The same object as map(storeName). */
  keyValue(storeName: string): KeyValueStore;
  map(storeName: string): MapStore;
  close(): Promise<void>;
}
