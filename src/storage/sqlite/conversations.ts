// Conversation state as rows keyed by (owner, peer) (schemas/sql/sqlite/0004_conversations.sql). Every
// write is one IMMEDIATE transaction: it reads and writes with the file's write lock held.
import { CONVERSATION_COLUMNS as COLUMNS, toConversation, type ConversationRow as Row } from "../rows.js";
import type { Conversation, ConversationHead, ConversationState, ConversationStore, ConversationUpdate } from "../types.js";
import { byActivity, checkConversationState, checkFold, checkSeq, checkStrings, sameConversationState } from "../validate.js";
import { settle, type Db } from "./db.js";

type ConversationRow = Row<number>;

export function conversationStore(db: Db): ConversationStore {
  const selectHead = db.prepare<[string], ConversationHead>(
    "SELECT version, folded_up_to AS foldedUpTo FROM conversation_heads WHERE owner = ?");
  const upsertHead = db.prepare<[string, number, number]>(
    `INSERT INTO conversation_heads (owner, version, folded_up_to) VALUES (?, ?, ?)
     ON CONFLICT (owner) DO UPDATE SET version = excluded.version, folded_up_to = excluded.folded_up_to`);
  const selectRow = db.prepare<[string, string], ConversationRow>(`SELECT ${COLUMNS} FROM conversations WHERE owner = ? AND peer = ?`);
  const selectChanged = db.prepare<[string, number], ConversationRow>(
    `SELECT ${COLUMNS} FROM conversations WHERE owner = ? AND version > ?`);
  const upsertRow = db.prepare<[string, string, number, number, number, number, number, number, number, number, number, number]>(
    `INSERT INTO conversations (owner, ${COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
     ON CONFLICT (owner, peer) DO UPDATE SET last_seq = excluded.last_seq, last_ts = excluded.last_ts,
       read_seq = excluded.read_seq, unread = excluded.unread, pinned = excluded.pinned, muted = excluded.muted,
       peer_read = excluded.peer_read, peer_delivered = excluded.peer_delivered, is_group = excluded.is_group,
       version = excluded.version`);
  const deleteRow = db.prepare<[string, string]>("DELETE FROM conversations WHERE owner = ? AND peer = ?");
  const insertRecall = db.prepare<[string, number, number]>(
    "INSERT INTO conversation_recalls (owner, target_seq, event_seq) VALUES (?, ?, ?) ON CONFLICT DO NOTHING");
  const selectRecalls = db.prepare<[string], { target_seq: number; event_seq: number }>(
    "SELECT target_seq, event_seq FROM conversation_recalls WHERE owner = ?");

  const head = (owner: string): ConversationHead => selectHead.get(owner) ?? { version: 0, foldedUpTo: 0 };
  const row = (owner: string, peer: string): Conversation | null => {
    const found = selectRow.get(owner, peer);
    return found === undefined ? null : toConversation(found);
  };
  const write = (owner: string, peer: string, s: ConversationState, version: number): Conversation => {
    upsertRow.run(owner, peer, s.last, s.lastTs, s.read, s.unread, s.pinned ? 1 : 0, s.muted ? 1 : 0, s.peerRead,
      s.peerDelivered, s.group ? 1 : 0, version);
    return { ...s, peer, version };
  };

  const update = db.transaction((owner: string, peer: string, fn: ConversationUpdate) => {
    const current = row(owner, peer);
    const result = fn(current);
    if (result === undefined || (result === null && current === null)) return { conversation: current, changed: false };
    const next = result === null ? null : checkConversationState(result);
    if (next !== null && current !== null && sameConversationState(current, next)) return { conversation: current, changed: false };
    const { version, foldedUpTo } = head(owner);
    upsertHead.run(owner, version + 1, foldedUpTo);
    if (next === null) {
      deleteRow.run(owner, peer);
      return { conversation: null, changed: true };
    }
    return { conversation: write(owner, peer, next, version + 1), changed: true };
  });

  const fold = db.transaction((owner: string, from: number, to: number,
    changes: ReadonlyMap<string, (current: ConversationState | null) => ConversationState>): boolean => {
    const { version, foldedUpTo } = head(owner);
    if (foldedUpTo !== from) return false;
    let changed = false;
    for (const [peer, fn] of changes) {
      const current = row(owner, peer);
      const next = checkConversationState(fn(current));
      if (current !== null && sameConversationState(current, next)) continue;
      write(owner, peer, next, version + 1);
      changed = true;
    }
    upsertHead.run(owner, changed ? version + 1 : version, to);
    return true;
  });

  const list = db.transaction((owner: string, since: number) => {
    const items = selectChanged.all(owner, since).map(toConversation).sort(byActivity);
    return { ...head(owner), items };
  });

  return {
    head: (owner) => settle(() => head(owner)),
    get: (owner, peer) => settle(() => row(owner, peer)),
    list: (owner, since) => settle(() => list(owner, since)),
    update: (owner, peer, fn) => settle(() => {
      checkStrings("conversations", owner, peer);
      return update.immediate(owner, peer, fn);
    }),
    fold: (owner, from, to, changes) => settle(() => {
      checkStrings("conversations", owner, ...changes.keys());
      checkFold(from, to);
      return fold.immediate(owner, from, to, changes);
    }),
    recall: (owner, target, event) => settle(() => {
      checkSeq("conversations", target, event);
      return insertRecall.run(owner, target, event).changes === 1;
    }),
    recalls: (owner) => settle(() => new Map(selectRecalls.all(owner).map((r) => [r.target_seq, r.event_seq]))),
  };
}
