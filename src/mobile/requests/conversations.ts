// The conversation list (incremental by version) and per-conversation settings.
import type { Conversation, ConversationList, GetConversations, UpdateConversation } from "../schema.js";
import type { MobileSession } from "../session.js";
import { conversationPayload, mirror } from "./messages.js";
import { mobileSessionsOf } from "./session.js";
import { bareJid } from "./validate.js";

export async function getConversations(s: MobileSession, req: GetConversations): Promise<ConversationList> {
  const owner = s.owner;
  await s.ctx.groups.refreshConversations(s);
  const { version, items } = await s.ctx.conversations.list(owner, req.sinceVersion);
  const conversations: Conversation[] = [];
  for (const [id, state] of items) conversations.push(await conversationPayload(s.ctx, owner, id, state));
  return { version, conversations };
}

export async function updateConversation(s: MobileSession, req: UpdateConversation): Promise<Conversation> {
  const conv = bareJid(s, req.conversation, "conversation");
  const owner = s.owner;
  const group = s.ctx.groups.isGroupJid(conv);
  const before = await s.ctx.conversations.get(owner, conv.toString());
  const state = await s.ctx.conversations.update(owner, conv.toString(), { pinned: req.pinned, muted: req.muted }, group);
  const payload = await conversationPayload(s.ctx, owner, conv.toString(), state);
  if (!before || before.v !== state.v) mirror(s, owner, payload, mobileSessionsOf(s, owner));
  return payload;
}
