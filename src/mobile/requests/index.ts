// Every request of the protocol and its handler. A handler returns the reply payload (REQUESTS in
// schema.ts names its type) or throws a MobileError; the session writes the frame.
import type { Payloads, RequestName, ResponseOf } from "../schema.js";
import type { MobileSession } from "../session.js";
import { issueToken, login, logout, ping, revokeToken, setBackground } from "./session.js";
import { pull, readMarker, recall, receipt, send } from "./messages.js";
import { getConversations, updateConversation } from "./conversations.js";
import {
  acceptContact, addContact, blockContact, deleteContact, getAvatar, getPresence, getRoster, rejectContact, setPresence, setRemark, unblockContact,
} from "./contacts.js";
import { requestUpload } from "./media.js";

export type Handlers = {
  [K in RequestName]: (s: MobileSession, body: Payloads[K]) => ResponseOf<K> | Promise<ResponseOf<K>>;
};

export const handlers: Handlers = {
  login, ping, setBackground, issueToken, revokeToken, logout,
  send, pull, readMarker, receipt, recall,
  // Acks are taken before the queue (session.ts); this answers one that arrives before login completes.
  ack: () => ({}),
  getConversations, updateConversation,
  getRoster, addContact, acceptContact, rejectContact, deleteContact, setRemark, blockContact, unblockContact, setPresence, getPresence,
  createGroup: (s, b) => s.ctx.groups.createGroup(s, b),
  inviteMembers: (s, b) => s.ctx.groups.inviteMembers(s, b),
  joinGroup: (s, b) => s.ctx.groups.joinGroup(s, b),
  leaveGroup: (s, b) => s.ctx.groups.leaveGroup(s, b),
  kickMember: (s, b) => s.ctx.groups.kickMember(s, b),
  dismissGroup: (s, b) => s.ctx.groups.dismissGroup(s, b),
  getGroupMembers: (s, b) => s.ctx.groups.getGroupMembers(s, b),
  getGroups: (s, b) => s.ctx.groups.getGroups(s, b),
  requestUpload,
  getAvatar,
};
