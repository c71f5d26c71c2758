// What every driver checks before it touches its database, and the limits they share: one definition, so
// that both engines accept and refuse exactly the same calls.
import type {
  AppendResult, AppendSink, Conversation, ConversationState, NewTimelineEntry, TimelineRetention,
} from "./types.js";

/** One append waiting for the group commit of its turn. */
export interface QueuedAppend {
  entries: NewTimelineEntry[];
  sink: AppendSink;
}

/** The tables whose rows an account owns (column `owner`), deleted with it; the counters are not among them. */
export const OWNED_TABLES = ["roster_items", "timeline", "key_value", "block_list", "conversations", "conversation_recalls"] as const;

/** Rows a retention pass deletes per statement, so that a large expiry never holds locks for long. */
export const EXPIRE_BATCH = 5_000;

/** Why `entry` cannot be stored, or null. */
function invalidEntry(entry: NewTimelineEntry): string | null {
  if (typeof entry !== "object" || entry === null) return "not an object";
  if (typeof entry.owner !== "string") return "owner must be a string";
  if (typeof entry.peer !== "string") return "peer must be a string";
  if (entry.stanzaId !== undefined && (typeof entry.stanzaId !== "string" || entry.stanzaId === "")) {
    return "stanzaId must be a non-empty string or left out";
  }
  if (entry.originId != null && typeof entry.originId !== "string") return "originId must be a string or null";
  if (typeof entry.ts !== "number" || !Number.isFinite(entry.ts)) return "ts must be a finite number";
  if (typeof entry.xml !== "string") return "xml must be a string";
  if (entry.archived != null && typeof entry.archived !== "boolean") return "archived must be a boolean";
  if (entry.searchText != null && typeof entry.searchText !== "string") return "searchText must be a string or null";
  return null;
}

/**
 * The answer to an append() the driver does not queue: refused (store closed, an invalid entry: checked per
 * call so that one bad call cannot fail a batch), or empty. Null when the call is to be queued.
 */
export function refuseAppend(entries: NewTimelineEntry[], closed: boolean): Promise<AppendResult[]> | null {
  if (closed) return Promise.reject(new Error("timeline: the store is closed"));
  if (entries.length === 0) return Promise.resolve([]);
  for (const entry of entries) {
    const problem = invalidEntry(entry);
    if (problem !== null) return Promise.reject(new TypeError(`timeline: invalid entry: ${problem}`));
  }
  return null;
}

/** Hands an append's early answer (refuseAppend) to its sink, as a later commit would: never synchronously. */
export function answerLater(answer: Promise<AppendResult[]>, sink: AppendSink): void {
  answer.then((rows) => sink.committed(rows), (err: unknown) => sink.failed(err));
}

/** A query's row limit as a whole number the database accepts (0 and below: nothing). */
export function queryLimit(limit: number): number {
  return limit > 0 ? Math.min(Math.trunc(limit), Number.MAX_SAFE_INTEGER) : 0;
}

function checkTime(name: string, value: number | undefined): void {
  if (value !== undefined && (typeof value !== "number" || !Number.isFinite(value))) {
    throw new TypeError(`timeline: retention ${name} must be a finite number`);
  }
}

/**
 * A retention pass (TimelineStore.expire) as statements deleting at most EXPIRE_BATCH rows each, so that a
 * large expiry never holds locks for long: `deleteBatch` deletes the expired rows older than `before` (only
 * unarchived ones if asked) up to that many, and returns how many it deleted.
 */
export async function expireInBatches(retention: TimelineRetention,
  deleteBatch: (before: number, unarchivedOnly: boolean) => number | Promise<number>): Promise<number> {
  checkTime("before", retention.before);
  checkTime("unarchivedBefore", retention.unarchivedBefore);
  let removed = 0;
  for (const [before, unarchivedOnly] of [[retention.before, false], [retention.unarchivedBefore, true]] as const) {
    if (before === undefined) continue;
    for (;;) {
      const count = await deleteBatch(before, unarchivedOnly);
      removed += count;
      if (count < EXPIRE_BATCH) break;
    }
  }
  return removed;
}

/** Throws a TypeError unless every argument is a string. */
export function checkStrings(what: string, ...values: unknown[]): void {
  for (const value of values) if (typeof value !== "string") throw new TypeError(`${what}: owner, key and JIDs must be strings`);
}

/** The distinct strings of `jids`, ascending; throws a TypeError for anything else. */
export function jidList(what: string, jids: readonly string[]): string[] {
  if (!Array.isArray(jids)) throw new TypeError(`${what}: JIDs must be an array of strings`);
  checkStrings(what, ...jids);
  return [...new Set(jids)].sort();
}

/** What `update` returned, checked: a string, null (delete) or undefined (leave as it is). */
export function checkMapValue(value: unknown): string | null | undefined {
  if (value === undefined || value === null || typeof value === "string") return value;
  throw new TypeError("map: update must return a string, null or undefined");
}

const SEQ_FIELDS = ["last", "lastTs", "read", "unread", "peerRead", "peerDelivered"] as const;
const FLAG_FIELDS = ["pinned", "muted", "group"] as const;

/** A conversation state as stored: every number a whole number ≥ 0, every flag a boolean; throws otherwise. */
export function checkConversationState(state: ConversationState): ConversationState {
  if (typeof state !== "object" || state === null) throw new TypeError("conversations: a state must be an object");
  for (const field of SEQ_FIELDS) {
    const value = state[field];
    if (!Number.isSafeInteger(value) || value < 0) throw new TypeError(`conversations: ${field} must be a whole number ≥ 0`);
  }
  for (const field of FLAG_FIELDS) {
    if (typeof state[field] !== "boolean") throw new TypeError(`conversations: ${field} must be a boolean`);
  }
  return {
    last: state.last, lastTs: state.lastTs, read: state.read, unread: state.unread, pinned: state.pinned,
    muted: state.muted, peerRead: state.peerRead, peerDelivered: state.peerDelivered, group: state.group,
  };
}

/** Whether two states are equal field by field. */
export function sameConversationState(a: ConversationState, b: ConversationState): boolean {
  for (const field of SEQ_FIELDS) if (a[field] !== b[field]) return false;
  for (const field of FLAG_FIELDS) if (a[field] !== b[field]) return false;
  return true;
}

export function checkFold(from: number, to: number): void {
  if (!Number.isSafeInteger(from) || !Number.isSafeInteger(to) || from < 0 || to < from) {
    throw new TypeError("conversations: fold needs whole numbers 0 ≤ from ≤ to");
  }
}

export function checkSeq(what: string, ...seqs: number[]): void {
  for (const seq of seqs) if (!Number.isSafeInteger(seq) || seq < 0) throw new TypeError(`${what}: seqs must be whole numbers ≥ 0`);
}

/**
 * The order of ConversationStore.list: newest activity first, then by peer. Two 1:1 conversations whose last
 * messages came in the same millisecond are ordered by the owner's timeline, which both seqs are of.
 */
export function byActivity(a: Conversation, b: Conversation): number {
  return b.lastTs - a.lastTs || (!a.group && !b.group ? b.last - a.last : 0) || (a.peer < b.peer ? -1 : a.peer > b.peer ? 1 : 0);
}
