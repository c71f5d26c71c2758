// The conversation list (incremental by version) and per-conversation settings.
import type { Conversation, ConversationList, GetConversations, UpdateConversation } from "../schema.js";
import type { MobileSession } from "../session.js";
import { conversationPayload, mirror } from "../conversation.js";
import { bareJid } from "./validate.js";

export async function getConversations(s: MobileSession, req: GetConversations): Promise<ConversationList> {
  const owner = s.owner;
  await s.ctx.groups.refreshConversations(s);
  const { version, items } = await s.ctx.conversations.list(owner, req.sinceVersion);
  const conversations: Conversation[] = [];
  for (const row of items) conversations.push(await conversationPayload(s.ctx, owner, row));
  return { version, conversations };
}

export async function updateConversation(s: MobileSession, req: UpdateConversation): Promise<Conversation> {
  const conv = bareJid(s, req.conversation, "conversation");
  const group = s.ctx.groups.isGroupJid(conv);
  const { conversation, changed } = await s.ctx.conversations.update(s.owner, conv.toString(), { pinned: req.pinned, muted: req.muted }, group);
  const payload = await conversationPayload(s.ctx, s.owner, conversation);
  if (changed) mirror(s, payload);
  return payload;
}
