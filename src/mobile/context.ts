// What every mobile connection shares: the module's API, its options and stores, the services of the
// feature modules it translates to (blocking, conversations, retraction), and the lookups over the
// timeline that requests and pushes need.
import type { ModuleApi, ServiceMap } from "../modules/module.js";
import type { KeyValueStore, TimelineEntry } from "../storage/types.js";
import type { Logger } from "../log.js";
import type { MobileOptions } from "./options.js";
import type { Message } from "./schema.js";
import { isRetractionXml, messageFromRow, tombstone } from "./bridge.js";
import type { MobileSession } from "./session.js";
import type { Groups } from "./groups.js";
import type { Handlers } from "./requests/index.js";

export interface MobileContext {
  readonly api: ModuleApi<MobileOptions>;
  readonly opts: MobileOptions;
  readonly log: Logger;
  /**
   * Per user: "ack:<device>" (the device's acknowledged seq), "gack:<device>:<group>" for groups. Ordered per
   * key by the key-value contract: acks are written without waiting, and the last one written is the one the
   * next login reads.
   */
  readonly devices: KeyValueStore;
  readonly blocking: ServiceMap["blocking"];
  readonly conversations: ServiceMap["conversations"];
  readonly retraction: ServiceMap["retraction"];
  /** Every open connection, logged in or not (the heartbeat sweep walks it). */
  readonly connections: Set<MobileSession>;
  readonly groups: Groups;
  /** The request handlers (requests/index.ts), by request name. */
  readonly handlers: Handlers;
  /** The user's logged-in mobile devices on this node. */
  devicesOf(owner: string): MobileSession[];
}

/** A user's row at exactly `seq`, or null. */
export async function rowAt(ctx: MobileContext, owner: string, seq: number): Promise<TimelineEntry | null> {
  if (!Number.isSafeInteger(seq) || seq < 1) return null;
  const rows = await ctx.api.store.timeline.query(owner, { afterSeq: seq - 1, limit: 1 });
  return rows.length === 1 && rows[0]!.seq === seq ? rows[0]! : null;
}

/** Messages for a batch of rows of one user's timeline: tombstones applied, recall events resolved. */
export async function toMessages(ctx: MobileContext, owner: string, rows: TimelineEntry[], recalls?: Map<number, number>): Promise<Message[]> {
  const recalled = recalls ?? (await ctx.conversations.recalls(owner));
  let byEvent: Map<number, number> | null = null;
  const out: Message[] = [];
  for (const row of rows) {
    // Rows from the group service in the user's own timeline are invitations: group events, not messages.
    if (ctx.groups.isGroupJidText(row.peer)) continue;
    const m = messageFromRow(row);
    if (!m) continue;
    if (recalled.has(row.seq)) tombstone(m);
    if (m.recallTargetClientMsgId !== "" && isRetractionXml(row.xml)) {
      byEvent ??= new Map([...recalled].map(([target, event]) => [event, target]));
      let target = byEvent.get(row.seq);
      if (target === undefined) {
        // Not recorded (yet): look for it. The recalled message was sent by the recall's sender.
        const found = await ctx.conversations.messageById(owner, row.peer, m.recallTargetClientMsgId, row.outgoing);
        if (found) target = found.seq;
      }
      m.recallTargetSeq = target ?? 0;
    }
    out.push(m);
  }
  return out;
}
