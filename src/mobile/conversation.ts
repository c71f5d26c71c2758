// A conversation row of the conversations service as the mobile Conversation payload.
import type { Conversation } from "./schema.js";
import { rowAt, toMessages, type MobileContext } from "./context.js";
import type { MobileSession } from "./session.js";

/** A row of the conversations service (its state, peer and list version). */
export type ConversationRow = NonNullable<Awaited<ReturnType<MobileContext["conversations"]["get"]>>>;

export async function conversationPayload(ctx: MobileContext, owner: string, row: ConversationRow): Promise<Conversation> {
  let lastMessage = null;
  if (row.group) lastMessage = await ctx.groups.lastMessage(owner, row.peer, row.last);
  else if (row.last > 0) {
    const stored = await rowAt(ctx, owner, row.last);
    if (stored) lastMessage = (await toMessages(ctx, owner, [stored]))[0] ?? null;
  }
  return {
    id: row.peer, type: row.group ? 1 : 0, lastMessage, maxSeq: row.last, readSeq: row.read, unread: row.unread,
    pinned: row.pinned, muted: row.muted, version: row.version, peerReadSeq: row.peerRead, peerDeliveredSeq: row.peerDelivered,
  };
}

/** Sends a Conversation push to the user's other devices. */
export function mirror(s: MobileSession, conversation: Conversation): void {
  for (const other of s.ctx.devicesOf(s.owner)) if (other !== s) other.push("conversation", conversation);
}
