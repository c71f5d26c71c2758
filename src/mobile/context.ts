// What every mobile connection shares: the module's API, its options and stores, and the lookups
// over the timeline that requests and hooks need.
import type { ModuleApi } from "../modules/module.js";
import type { KeyValueStore, TimelineEntry } from "../storage/types.js";
import type { Logger } from "../log.js";
import type { MobileOptions } from "./options.js";
import type { ConversationStore } from "./conversations.js";
import type { BlockLists } from "./blocking.js";
import type { Message } from "./schema.js";
import { isRetractionXml, messageFromRow, retractTarget, tombstone } from "./bridge.js";
import { parseFramedElement } from "../xml/parser.js";
import type { MobileSession } from "./session.js";
import type { Groups } from "./groups.js";
import type { OrderedKeyValue } from "./ordered-kv.js";

export interface MobileContext {
  readonly api: ModuleApi<MobileOptions>;
  readonly opts: MobileOptions;
  readonly log: Logger;
  /**
   * Per user: "ack:<device>" (the device's acknowledged seq), "gack:<device>:<group>" for groups. Ordered per
   * key: acks are written without waiting, and the last one written must be the one the next login reads.
   */
  readonly devices: OrderedKeyValue;
  /** Per user: "<sha-256 of the token>" → TokenRecord. */
  readonly tokens: KeyValueStore;
  readonly conversations: ConversationStore;
  readonly blocking: BlockLists;
  /** Every open connection, logged in or not (the heartbeat sweep walks it). */
  readonly connections: Set<MobileSession>;
  readonly groups: Groups;
}

/** A user's row at exactly `seq`, or null. */
export async function rowAt(ctx: MobileContext, owner: string, seq: number): Promise<TimelineEntry | null> {
  if (!Number.isSafeInteger(seq) || seq < 1) return null;
  const rows = await ctx.api.store.timeline.query(owner, { afterSeq: seq - 1, limit: 1 });
  return rows.length === 1 && rows[0]!.seq === seq ? rows[0]! : null;
}

/** How far back a message is looked for by its id (receipts, markers, retractions name recent messages). */
const LOOKBACK = 500;

/** Whether the stored stanza's own `id` attribute is `id` (only the start tag is looked at). */
function startTagHasId(xmlText: string, id: string): boolean {
  const end = xmlText.indexOf(">");
  const head = end < 0 ? xmlText : xmlText.slice(0, end);
  return head.includes(` id="${id.replace(/&/g, "&amp;").replace(/"/g, "&quot;").replace(/</g, "&lt;").replace(/>/g, "&gt;")}"`);
}

/**
 * The newest row of the conversation with `peer` in `owner`'s timeline that peers refer to by `id`
 * (its origin-id or its id attribute), sent by the owner (`outgoing`) or by the peer.
 */
export async function findByMessageId(ctx: MobileContext, owner: string, peer: string, id: string, outgoing: boolean): Promise<TimelineEntry | null> {
  if (id === "") return null;
  // Receipts and markers name very recent messages: look at a few rows first, then further back.
  let before: number | undefined;
  let seen = 0;
  for (const page of [8, 64, LOOKBACK]) {
    const rows = await ctx.api.store.timeline.query(owner, { with: peer, beforeSeq: before, reverse: true, limit: Math.min(page, LOOKBACK - seen) });
    for (const r of rows) {
      if (r.outgoing !== outgoing) continue;
      if (r.originId === id || (r.originId === null && startTagHasId(r.xml, id))) return r;
    }
    seen += rows.length;
    if (rows.length < page || seen >= LOOKBACK) break;
    before = rows[rows.length - 1]!.seq;
  }
  return null;
}

/** Messages for a batch of rows of one user's timeline: tombstones applied, recall events resolved. */
export async function toMessages(ctx: MobileContext, owner: string, rows: TimelineEntry[], recalls?: Map<number, number>): Promise<Message[]> {
  const recalled = recalls ?? (await ctx.conversations.recalls(owner));
  let byEvent: Map<number, number> | null = null;
  const out: Message[] = [];
  for (const row of rows) {
    // Rows from the group service in the user's own timeline are invitations: group events, not messages.
    if (ctx.groups.isGroupDomain(row.peer.slice(row.peer.indexOf("@") + 1))) continue;
    const m = messageFromRow(row);
    if (!m) continue;
    if (recalled.has(row.seq)) tombstone(m);
    if (m.recallTargetClientMsgId !== "" && isRetractionXml(row.xml)) {
      byEvent ??= new Map([...recalled].map(([target, event]) => [event, target]));
      let target = byEvent.get(row.seq);
      if (target === undefined) {
        // Not recorded (yet): look for it. The recalled message was sent by the recall's sender.
        const found = await findByMessageId(ctx, owner, row.peer, m.recallTargetClientMsgId, row.outgoing);
        if (found) target = found.seq;
      }
      m.recallTargetSeq = target ?? 0;
    }
    out.push(m);
  }
  return out;
}

/** The XEP-0424 target of a stored row, if it is a retraction. */
export function rowRetractTarget(row: TimelineEntry): string | null {
  if (!isRetractionXml(row.xml)) return null;
  try {
    return retractTarget(parseFramedElement(row.xml));
  } catch {
    return null;
  }
}
