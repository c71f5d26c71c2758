// Store contracts. Drivers (sqlite, later postgres) implement these shapes; features never write SQL.
// Every method is async so that a networked driver fits the same contract; the SQLite driver resolves
// at once, and batches timeline writes per tick into one transaction (group commit).

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
   * Removes the account and everything it owns (roster, timeline, key-value data). The timeline seq and
   * roster version counters stay, so that a re-created account never hands out a number again.
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
}

/** A message as written into one user's timeline (DESIGN.md "the timeline"). */
export interface NewTimelineEntry {
  owner: string;             // bare JID whose timeline this is
  peer: string;              // bare JID of the other party
  outgoing: boolean;         // owner sent it
  stanzaId: string;          // XEP-0359 id given by the server
  originId: string | null;   // client message id (XEP-0359 origin-id); deduplicates resends, see append()
  ts: number;                // ms since epoch
  xml: string;               // the stanza as routed
  pending: boolean;          // no resource has received it yet (offline, XEP-0160)
  /** Shown by MAM (XEP-0313) queries with `archivedOnly`; false when the owner's preferences say never. Default true. */
  archived?: boolean;
  /** The text that full-text search matches (the body), or null (default): never matched. */
  searchText?: string | null;
}
export interface TimelineEntry extends NewTimelineEntry { seq: number; archived: boolean; searchText: string | null }

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

export interface TimelinePurge {
  /** Removes entries older than this (ms since epoch), except pending ones (offline messages not yet delivered). */
  before: number;
  /** Only entries that are not archived (kept for offline delivery, resends and device sync only). */
  unarchivedOnly?: boolean;
}

export interface TimelineStore {
  /**
   * Writes all entries in one transaction; each gets the next seq of its owner. An outgoing entry whose
   * (owner, originId) exists already is not written again: the stored entry is returned in its place.
   * Likewise an incoming entry whose (owner, peer, originId) exists, so a resent 1:1 message is not
   * written twice into the recipient's timeline either (two senders may choose the same originId).
   * The result has one element per input, in order; `duplicate` marks the ones that already existed.
   */
  append(entries: NewTimelineEntry[]): Promise<Array<TimelineEntry & { duplicate: boolean }>>;
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
  /** Retention: removes old entries of every owner (seqs are never reused); returns how many. */
  purge(opts: TimelinePurge): Promise<number>;
}

/** Opaque values by (owner, key) in a named store: private XML, vCards, last activity… */
export interface KeyValueStore {
  get(owner: string, key: string): Promise<string | null>;
  set(owner: string, key: string, value: string | null): Promise<void>;
}

/** What applying migrations did (`hearth migrate`): versions before and after, and the files applied. */
export interface MigrationReport { from: number; to: number; applied: string[] }

export interface Store {
  readonly driver: string;
  readonly accounts: AccountStore;
  readonly roster: RosterStore;
  readonly timeline: TimelineStore;
  keyValue(storeName: string): KeyValueStore;
  close(): Promise<void>;
}
