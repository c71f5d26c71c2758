// Rows as both drivers read them, and their mapping to the contract's objects. `B` is how an engine returns
// a boolean column: SQLite as 0/1, PostgreSQL as a boolean; Boolean() reads both.
import type { Conversation, TimelineEntry } from "./types.js";
import type { StanzaIds } from "./stanza-ids.js";

export interface TimelineRow<B extends number | boolean> {
  owner: string; seq: number; peer: string; outgoing: B; stanza_id: string; origin_id: string | null;
  ts: number; xml: string; pending: B; archived: B; search_text: string | null;
}
export const TIMELINE_COLUMNS = "owner, seq, peer, outgoing, stanza_id, origin_id, ts, xml, pending, archived, search_text";

/** A row as the contract's entry; a row stored without a stanza-id (empty) gets the one derived from its seq. */
export function toTimelineEntry(row: TimelineRow<number | boolean>, ids: StanzaIds): TimelineEntry {
  return {
    owner: row.owner, peer: row.peer, outgoing: Boolean(row.outgoing),
    stanzaId: row.stanza_id === "" ? ids.encode(row.owner, row.seq) : row.stanza_id, originId: row.origin_id,
    ts: row.ts, xml: row.xml, pending: Boolean(row.pending), seq: row.seq, archived: Boolean(row.archived),
    searchText: row.search_text,
  };
}

export interface ConversationRow<B extends number | boolean> {
  peer: string; last_seq: number; last_ts: number; read_seq: number; unread: number; pinned: B; muted: B;
  peer_read: number; peer_delivered: number; is_group: B; version: number;
}
export const CONVERSATION_COLUMNS =
  "peer, last_seq, last_ts, read_seq, unread, pinned, muted, peer_read, peer_delivered, is_group, version";

export function toConversation(row: ConversationRow<number | boolean>): Conversation {
  return {
    peer: row.peer, last: row.last_seq, lastTs: row.last_ts, read: row.read_seq, unread: row.unread,
    pinned: Boolean(row.pinned), muted: Boolean(row.muted), peerRead: row.peer_read, peerDelivered: row.peer_delivered,
    group: Boolean(row.is_group), version: row.version,
  };
}
