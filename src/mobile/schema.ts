// The mobile protocol's schema: the .proto files of schemas/proto/hearth/mobile/v1, loaded once at run
// time with protobufjs, and the TypeScript shapes of their messages (as protobufjs reads and writes
// them: camelCase fields, uint64 as number, enums as numbers). The enum constants below are checked
// against the .proto files when they load, so the two cannot drift apart silently.
import { existsSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import protobuf from "protobufjs";

export const PROTOCOL_VERSION = 1;
export const PROTO_PACKAGE = "hearth.mobile.v1";

// ---- enums (values as in the .proto files) ----

export const ErrorCode = {
  UNSPECIFIED: 0,
  BAD_FRAME: 100,
  FRAME_TOO_LARGE: 101,
  UNKNOWN_PAYLOAD: 102,
  NOT_AUTHENTICATED: 200,
  AUTH_FAILED: 201,
  TOKEN_INVALID: 202,
  ALREADY_AUTHENTICATED: 203,
  AUTH_THROTTLED: 204,
  UNSUPPORTED_VERSION: 205,
  INVALID_ARGUMENT: 300,
  NOT_FOUND: 301,
  CONFLICT: 302,
  RECALL_EXPIRED: 303,
  RECIPIENT_UNAVAILABLE: 304,
  UNSUPPORTED: 305,
  FORBIDDEN: 400,
  RATE_LIMITED: 401,
  INTERNAL: 500,
  UNAVAILABLE: 501,
  TIMEOUT: 502,
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

export const Platform = {
  UNSPECIFIED: 0, IOS: 1, ANDROID: 2, IPADOS: 3, ANDROID_TABLET: 4, WINDOWS: 5, MACOS: 6, LINUX: 7, WEB: 8,
} as const;
export type Platform = (typeof Platform)[keyof typeof Platform];

export const KickReason = {
  UNSPECIFIED: 0, LOGIN_CONFLICT: 1, SAME_DEVICE: 2, TOKEN_REVOKED: 3, ACCOUNT_DELETED: 4, SERVER_SHUTDOWN: 5,
  HEARTBEAT_TIMEOUT: 6, POLICY_VIOLATION: 7, LOGGED_OUT: 8, REPLACED: 9,
} as const;
export type KickReason = (typeof KickReason)[keyof typeof KickReason];

export const ConversationType = { DIRECT: 0, GROUP: 1 } as const;
export type ConversationType = (typeof ConversationType)[keyof typeof ConversationType];

export const ContentType = { TEXT: 0, IMAGE: 1, AUDIO: 2, VIDEO: 3, FILE: 4, LOCATION: 5, CUSTOM: 15 } as const;
export type ContentType = (typeof ContentType)[keyof typeof ContentType];

export const MessageKind = { NORMAL: 0, RECALL: 1 } as const;
export type MessageKind = (typeof MessageKind)[keyof typeof MessageKind];

export const MarkerKind = { DELIVERED: 0, DISPLAYED: 1 } as const;
export type MarkerKind = (typeof MarkerKind)[keyof typeof MarkerKind];

export const Subscription = { NONE: 0, TO: 1, FROM: 2, BOTH: 3 } as const;
export type Subscription = (typeof Subscription)[keyof typeof Subscription];

export const Show = { AVAILABLE: 0, AWAY: 1, CHAT: 2, DND: 3, XA: 4 } as const;
export type Show = (typeof Show)[keyof typeof Show];

export const GroupRole = { NONE: 0, MEMBER: 1, ADMIN: 2, OWNER: 3 } as const;
export type GroupRole = (typeof GroupRole)[keyof typeof GroupRole];

export const GroupEventKind = {
  UNSPECIFIED: 0, INVITED: 1, MEMBER_JOINED: 2, MEMBER_LEFT: 3, REMOVED: 4, DISMISSED: 5,
} as const;
export type GroupEventKind = (typeof GroupEventKind)[keyof typeof GroupEventKind];

/** TS constant → proto enum name and the prefix of its values (proto style: values carry the enum's name). */
const ENUMS: Array<[Record<string, number>, string, string]> = [
  [ErrorCode, "ErrorCode", "ERROR_CODE_"],
  [Platform, "Platform", "PLATFORM_"],
  [KickReason, "KickReason", "KICK_REASON_"],
  [ConversationType, "ConversationType", "CONVERSATION_TYPE_"],
  [ContentType, "ContentType", "CONTENT_TYPE_"],
  [MessageKind, "MessageKind", "MESSAGE_KIND_"],
  [MarkerKind, "MarkerKind", "MARKER_KIND_"],
  [Subscription, "Subscription", "SUBSCRIPTION_"],
  [Show, "Show", "SHOW_"],
  [GroupRole, "GroupRole", "GROUP_ROLE_"],
  [GroupEventKind, "GroupEventKind", "GROUP_EVENT_KIND_"],
];

// ---- messages ----

export interface ErrorPayload { code: ErrorCode; message: string; retryAfterMs: number }
export type Ok = Record<string, never>;

export interface LoginRequest {
  username: string;
  password?: string;
  token?: string;
  deviceId: string;
  platform: Platform;
  clientVersion: string;
  protocolVersion: number;
  resumeAfterSeq?: number;
  background: boolean;
}
export interface LoginResult {
  jid: string; sessionId: string; serverTime: number;
  heartbeatIntervalMs: number; heartbeatTimeoutMs: number;
  backgroundHeartbeatIntervalMs: number; backgroundHeartbeatTimeoutMs: number;
  maxSeq: number; resumeAfterSeq: number; maxFrameBytes: number; protocolVersion: number;
  recallWindowSeconds: number; groupsEnabled: boolean; groupDomain: string; maxUploadBytes: number;
}
export interface Ping { clientTime: number }
export interface Pong { serverTime: number; clientTime: number }
export interface SetBackground { background: boolean }
export interface IssueToken { ttlSeconds: number }
export interface TokenIssued { token: string; expiresAt: number }
export interface RevokeToken { token: string }
export type Logout = Record<string, never>;
export interface Kicked { reason: KickReason; message: string; byDeviceId: string; byPlatform: Platform }

export interface Message {
  seq: number;
  serverMsgId: string;
  clientMsgId: string;
  conversation: string;
  conversationType: ConversationType;
  from: string;
  outgoing: boolean;
  serverTime: number;
  contentType: ContentType;
  body: string;
  mentions: string[];
  searchableText: string;
  payload: Uint8Array;
  kind: MessageKind;
  recalled: boolean;
  recallTargetSeq: number;
  recallTargetClientMsgId: string;
  receiptRequested: boolean;
}
export interface SendMessage {
  clientMsgId: string; to: string; contentType: ContentType; body: string; mentions: string[];
  searchableText: string; payload: Uint8Array;
}
export interface SendAck { clientMsgId: string; serverMsgId: string; seq: number; serverTime: number; duplicate: boolean }
export interface MessagePush { messages: Message[] }
export interface Ack { seq: number; conversation: string }
export interface SyncState { syncedSeq: number; maxSeq: number; complete: boolean; conversation: string }
export interface Pull { conversation: string; beforeSeq: number; afterSeq: number; limit: number }
export interface PullResult { messages: Message[]; isEnd: boolean }
export interface ReadMarker { conversation: string; seq: number }
export interface Receipt { conversation: string; seq: number }
export interface MarkerPush { conversation: string; kind: MarkerKind; clientMsgId: string; seq: number; from: string }
export interface Recall { conversation: string; seq: number }
export interface RecallResult { recalledSeq: number; seq: number; serverTime: number }

export interface GetConversations { sinceVersion: number }
export interface Conversation {
  id: string; type: ConversationType; lastMessage: Message | null; maxSeq: number; readSeq: number; unread: number;
  pinned: boolean; muted: boolean; version: number; peerReadSeq: number; peerDeliveredSeq: number;
}
export interface ConversationList { version: number; conversations: Conversation[] }
export interface UpdateConversation { conversation: string; pinned?: boolean; muted?: boolean }

export interface Contact {
  jid: string; remark: string; groups: string[]; subscription: Subscription; pendingOut: boolean; pendingIn: boolean;
  requestMessage: string; preApproved: boolean; inRoster: boolean; removed: boolean; blocked: boolean;
}
export interface GetRoster { sinceVersion: number }
export interface Roster { version: number; unchanged: boolean; contacts: Contact[]; blocked: string[] }
export interface RosterPush { contact: Contact; version: number }
export interface AddContact { jid: string; remark: string; groups: string[]; message: string }
export interface AcceptContact { jid: string; remark: string }
export interface RejectContact { jid: string }
export interface DeleteContact { jid: string }
export interface SetRemark { jid: string; remark: string; setGroups: boolean; groups: string[] }
export interface BlockContact { jid: string }
export interface UnblockContact { jid: string }
export interface ContactRequestPush { from: string; message: string }
export interface SetPresence { show: Show; status: string }
export interface Presence { jid: string; available: boolean; show: Show; status: string; priority: number; mobile: boolean; avatarHash: string }
export interface PresencePush { presence: Presence }
export interface GetPresence { jids: string[] }
export interface PresenceList { presences: Presence[] }
export interface GetAvatar { jid: string }
export interface Avatar { jid: string; hash: string; type: string; data: Uint8Array }

export interface Group { jid: string; name: string; role: GroupRole; memberCount: number; maxSeq: number }
export interface GroupMember { jid: string; role: GroupRole; nick: string }
export interface CreateGroup { name: string; members: string[] }
export interface InviteMembers { group: string; jids: string[] }
export interface JoinGroup { group: string }
export interface LeaveGroup { group: string }
export interface KickMember { group: string; jid: string }
export interface DismissGroup { group: string }
export interface GetGroupMembers { group: string }
export interface GroupMembers { group: string; members: GroupMember[] }
export type GetGroups = Record<string, never>;
export interface GroupList { groups: Group[] }
export interface GroupEventPush { group: string; kind: GroupEventKind; jid: string; by: string; name: string }

export interface RequestUpload { filename: string; size: number; contentType: string }
export interface HttpHeader { name: string; value: string }
export interface UploadSlot { putUrl: string; putHeaders: HttpHeader[]; getUrl: string; expiresAt: number }

/** Every payload of the Envelope's oneof, by its (camelCase) field name. */
export interface Payloads {
  error: ErrorPayload; ok: Ok;
  login: LoginRequest; loginResult: LoginResult; ping: Ping; pong: Pong; setBackground: SetBackground;
  issueToken: IssueToken; tokenIssued: TokenIssued; revokeToken: RevokeToken; logout: Logout; kicked: Kicked;
  send: SendMessage; sendAck: SendAck; messagePush: MessagePush; pull: Pull; pullResult: PullResult; ack: Ack;
  syncState: SyncState; readMarker: ReadMarker; receipt: Receipt; markerPush: MarkerPush; recall: Recall;
  recallResult: RecallResult;
  getConversations: GetConversations; conversationList: ConversationList; updateConversation: UpdateConversation;
  conversation: Conversation;
  getRoster: GetRoster; roster: Roster; rosterPush: RosterPush; addContact: AddContact; acceptContact: AcceptContact;
  rejectContact: RejectContact; deleteContact: DeleteContact; setRemark: SetRemark; blockContact: BlockContact;
  unblockContact: UnblockContact; contactRequest: ContactRequestPush; setPresence: SetPresence;
  presencePush: PresencePush; getPresence: GetPresence; presenceList: PresenceList;
  createGroup: CreateGroup; group: Group; inviteMembers: InviteMembers; joinGroup: JoinGroup; leaveGroup: LeaveGroup;
  kickMember: KickMember; dismissGroup: DismissGroup; getGroupMembers: GetGroupMembers; groupMembers: GroupMembers;
  getGroups: GetGroups; groupList: GroupList; groupEvent: GroupEventPush;
  requestUpload: RequestUpload; uploadSlot: UploadSlot;
  getAvatar: GetAvatar; avatar: Avatar;
}
export type PayloadName = keyof Payloads;

/** A decoded frame: the request id and exactly one payload. */
export type Envelope = { [K in PayloadName]: { requestId: number; payload: K; body: Payloads[K] } }[PayloadName];

/** What each request is answered with (besides `error`). */
export const REQUESTS = {
  login: "loginResult", ping: "pong", setBackground: "ok", issueToken: "tokenIssued", revokeToken: "ok", logout: "ok",
  send: "sendAck", pull: "pullResult", ack: "ok", readMarker: "conversation", receipt: "ok", recall: "recallResult",
  getConversations: "conversationList", updateConversation: "conversation",
  getRoster: "roster", addContact: "ok", acceptContact: "ok", rejectContact: "ok", deleteContact: "ok", setRemark: "ok",
  blockContact: "ok", unblockContact: "ok", setPresence: "ok", getPresence: "presenceList",
  createGroup: "group", inviteMembers: "ok", joinGroup: "group", leaveGroup: "ok", kickMember: "ok", dismissGroup: "ok",
  getGroupMembers: "groupMembers", getGroups: "groupList", getAvatar: "avatar",
  requestUpload: "uploadSlot",
} as const satisfies Partial<Record<PayloadName, PayloadName>>;
export type RequestName = keyof typeof REQUESTS;
export type ResponseOf<K extends RequestName> = Payloads[(typeof REQUESTS)[K]];

export function isRequest(name: string): name is RequestName {
  return Object.hasOwn(REQUESTS, name);
}

// ---- loading ----

/** The folder holding `hearth/mobile/v1/*.proto`, found from this file (src/ or dist/src/). */
export function protoRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    const candidate = path.join(dir, "schemas", "proto");
    if (existsSync(path.join(candidate, "hearth", "mobile", "v1", "envelope.proto"))) return candidate;
    dir = path.dirname(dir);
  }
  throw new Error("schemas/proto/hearth/mobile/v1/envelope.proto not found above " + fileURLToPath(import.meta.url));
}

export interface Schema {
  readonly root: protobuf.Root;
  readonly envelope: protobuf.Type;
}

let loaded: Schema | null = null;

/** Loads (once) and checks the schema. Throws if the .proto files and the constants above disagree. */
export function schema(): Schema {
  if (loaded) return loaded;
  const base = protoRoot();
  const root = new protobuf.Root();
  root.resolvePath = (_origin, target) => path.join(base, target);
  root.loadSync("hearth/mobile/v1/envelope.proto", { keepCase: false });
  root.resolveAll();
  for (const [constants, name, prefix] of ENUMS) {
    const e = root.lookupEnum(`${PROTO_PACKAGE}.${name}`);
    for (const [key, value] of Object.entries(constants)) {
      if (e.values[prefix + key] !== value) throw new Error(`mobile schema: ${name}.${prefix}${key} is not ${value} in the .proto files`);
    }
    for (const [key, value] of Object.entries(e.values)) {
      if (constants[key.slice(prefix.length)] !== value) throw new Error(`mobile schema: ${name}.${key} is missing from src/mobile/schema.ts`);
    }
  }
  const envelope = root.lookupType(`${PROTO_PACKAGE}.Envelope`);
  const oneof = envelope.oneofs.payload;
  const fields = new Set(oneof.fieldsArray.map((f) => f.name));
  const expected = new Set<string>(Object.keys(PAYLOAD_NAMES));
  for (const f of fields) if (!expected.has(f)) throw new Error(`mobile schema: Envelope.${f} is missing from src/mobile/schema.ts`);
  for (const f of expected) if (!fields.has(f)) throw new Error(`mobile schema: Envelope has no payload ${f}`);
  loaded = { root, envelope };
  return loaded;
}

/** Every payload name once, for the load-time check (a Record so a missing key fails the type check). */
const PAYLOAD_NAMES: Record<PayloadName, true> = {
  error: true, ok: true, login: true, loginResult: true, ping: true, pong: true, setBackground: true, issueToken: true,
  tokenIssued: true, revokeToken: true, logout: true, kicked: true, send: true, sendAck: true, messagePush: true,
  pull: true, pullResult: true, ack: true, syncState: true, readMarker: true, receipt: true, markerPush: true,
  recall: true, recallResult: true, getConversations: true, conversationList: true, updateConversation: true,
  conversation: true, getRoster: true, roster: true, rosterPush: true, addContact: true, acceptContact: true,
  rejectContact: true, deleteContact: true, setRemark: true, blockContact: true, unblockContact: true,
  contactRequest: true, setPresence: true, presencePush: true, getPresence: true, presenceList: true,
  createGroup: true, group: true, inviteMembers: true, joinGroup: true, leaveGroup: true, kickMember: true,
  dismissGroup: true, getGroupMembers: true, groupMembers: true, getGroups: true, groupList: true, groupEvent: true,
  requestUpload: true, uploadSlot: true,
  getAvatar: true, avatar: true,
};
