// Conversation state as rows keyed by (owner, peer) (schemas/sql/postgres/0004_conversations.sql). Every
// write is one transaction that first locks the owner's head row: the writers of one owner, on any node,
// take turns (they share its version counter), and each reads the rows after the previous one committed.
import type pg from "pg";
import { CONVERSATION_COLUMNS as COLUMNS, toConversation, type ConversationRow as Row } from "../rows.js";
import type { Conversation, ConversationHead, ConversationState, ConversationStore } from "../types.js";
import { byActivity, checkConversationState, checkFold, checkSeq, checkStrings, sameConversationState } from "../validate.js";
import { statement, transaction } from "./pool.js";

type ConversationRow = Row<boolean>;

const HEAD = `version, folded_up_to AS "foldedUpTo"`;
const selectHead = statement("conv-head", `SELECT ${HEAD} FROM conversation_heads WHERE owner = $1`);
// Creates the head when there is none; either way the row stays locked until the transaction ends.
const lockHead = statement("conv-lock-head", `INSERT INTO conversation_heads AS h (owner, version, folded_up_to) VALUES ($1, 0, 0)
  ON CONFLICT (owner) DO UPDATE SET owner = h.owner RETURNING ${HEAD}`);
const selectRows = statement("conv-rows", `SELECT ${COLUMNS} FROM conversations WHERE owner = $1 AND peer = ANY($2::text[])`);
// Head and rows from one statement: one snapshot, so the version always matches the rows.
const selectChanged = statement("conv-list", `SELECT h.version AS head_version, h.folded_up_to AS head_folded, ${COLUMNS.split(", ").map((c) => `c.${c}`).join(", ")}
  FROM (SELECT coalesce(max(version), 0) AS version, coalesce(max(folded_up_to), 0) AS folded_up_to
        FROM conversation_heads WHERE owner = $1) h
  LEFT JOIN conversations c ON c.owner = $1 AND c.version > $2`);
const writeRows = statement("conv-write", `WITH head AS (
    UPDATE conversation_heads SET version = $2, folded_up_to = $3 WHERE owner = $1)
  INSERT INTO conversations (owner, ${COLUMNS})
  SELECT $1, r.*, $2 FROM unnest($4::text[], $5::bigint[], $6::bigint[], $7::bigint[], $8::integer[], $9::boolean[],
                                 $10::boolean[], $11::bigint[], $12::bigint[], $13::boolean[]) AS r
  ON CONFLICT (owner, peer) DO UPDATE SET last_seq = excluded.last_seq, last_ts = excluded.last_ts,
    read_seq = excluded.read_seq, unread = excluded.unread, pinned = excluded.pinned, muted = excluded.muted,
    peer_read = excluded.peer_read, peer_delivered = excluded.peer_delivered, is_group = excluded.is_group,
    version = excluded.version`);
const deleteRow = statement("conv-delete", `WITH head AS (UPDATE conversation_heads SET version = $2 WHERE owner = $1)
  DELETE FROM conversations WHERE owner = $1 AND peer = $3`);
const insertRecall = statement("conv-recall",
  "INSERT INTO conversation_recalls (owner, target_seq, event_seq) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING");
const selectRecalls = statement("conv-recalls", "SELECT target_seq, event_seq FROM conversation_recalls WHERE owner = $1");

/** The parameters of conv-write for these rows. */
function rowsParams(owner: string, version: number, foldedUpTo: number, rows: Array<[string, ConversationState]>): unknown[] {
  const column = <T>(pick: (s: ConversationState) => T): T[] => rows.map(([, s]) => pick(s));
  return [owner, version, foldedUpTo, rows.map(([peer]) => peer), column((s) => s.last), column((s) => s.lastTs),
    column((s) => s.read), column((s) => s.unread), column((s) => s.pinned), column((s) => s.muted),
    column((s) => s.peerRead), column((s) => s.peerDelivered), column((s) => s.group)];
}

export function conversationStore(pool: pg.Pool): ConversationStore {
  const rowsOf = async (client: pg.PoolClient | pg.Pool, owner: string, peers: string[]): Promise<Map<string, Conversation>> =>
    new Map((await client.query<ConversationRow>(selectRows([owner, peers]))).rows.map((r) => [r.peer, toConversation(r)]));

  return {
    head: async (owner) => (await pool.query<ConversationHead>(selectHead([owner]))).rows[0] ?? { version: 0, foldedUpTo: 0 },
    get: async (owner, peer) => (await rowsOf(pool, owner, [peer])).get(peer) ?? null,
    async list(owner, since) {
      const { rows } = await pool.query<ConversationRow & { head_version: number; head_folded: number }>(selectChanged([owner, since]));
      const items = rows.filter((r) => r.peer !== null).map(toConversation).sort(byActivity);
      return { version: rows[0].head_version, foldedUpTo: rows[0].head_folded, items };
    },
    async update(owner, peer, fn) {
      checkStrings("conversations", owner, peer);
      return transaction(pool, async (client) => {
        const head = (await client.query<ConversationHead>(lockHead([owner]))).rows[0];
        const current = (await rowsOf(client, owner, [peer])).get(peer) ?? null;
        const result = fn(current);
        if (result === undefined || (result === null && current === null)) return { conversation: current, changed: false };
        const version = head.version + 1;
        if (result === null) {
          await client.query(deleteRow([owner, version, peer]));
          return { conversation: null, changed: true };
        }
        const next = checkConversationState(result);
        if (current !== null && sameConversationState(current, next)) return { conversation: current, changed: false };
        await client.query(writeRows(rowsParams(owner, version, head.foldedUpTo, [[peer, next]])));
        return { conversation: { ...next, peer, version }, changed: true };
      });
    },
    async fold(owner, from, to, changes) {
      checkStrings("conversations", owner, ...changes.keys());
      checkFold(from, to);
      return transaction(pool, async (client) => {
        const head = (await client.query<ConversationHead>(lockHead([owner]))).rows[0];
        if (head.foldedUpTo !== from) return false;
        const current = changes.size === 0 ? new Map<string, Conversation>() : await rowsOf(client, owner, [...changes.keys()]);
        const changed: Array<[string, ConversationState]> = [];
        for (const [peer, fn] of changes) {
          const before = current.get(peer) ?? null;
          const next = checkConversationState(fn(before));
          if (before === null || !sameConversationState(before, next)) changed.push([peer, next]);
        }
        await client.query(writeRows(rowsParams(owner, changed.length === 0 ? head.version : head.version + 1, to, changed)));
        return true;
      });
    },
    async recall(owner, target, event) {
      checkSeq("conversations", target, event);
      return (await pool.query(insertRecall([owner, target, event]))).rowCount === 1;
    },
    recalls: async (owner) => new Map((await pool.query<{ target_seq: number; event_seq: number }>(selectRecalls([owner])))
      .rows.map((r) => [r.target_seq, r.event_seq])),
  };
}
