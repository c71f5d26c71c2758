// The protocol mapping of DESIGN.md, both ways: a mobile message is a <message type="chat"> with
// origin-id = client message id (XEP-0359); mentions are XEP-0372 references; media links are also
// XEP-0066 out-of-band data; delivery receipts are XEP-0184, read markers XEP-0333, recall XEP-0424.
// What XMPP has no element for (content type, searchable text, opaque payload) travels in one
// <content xmlns="urn:hearth:mobile:1"/> child that XMPP clients ignore.
import { xml, type Element } from "../xml/element.js";
import { NS } from "../xml/ns.js";
import { parseFramedElement } from "../xml/parser.js";
import { tryParseJid } from "../jid/jid.js";
import type { RosterItem, TimelineEntry } from "../storage/types.js";
import { NS_FASTEN, NS_RETRACT, NS_RETRACT_V0, isRetractionXml, messageIdOf, retractTarget, storedMessageId } from "../im/message-ids.js";
import {
  ContentType, ConversationType, MessageKind, Show, Subscription,
  type Contact, type Message, type Presence, type SendMessage,
} from "./schema.js";

export const MNS = {
  content: "urn:hearth:mobile:1",
  receipts: NS.receipts,
  markers: NS.chatMarkers,
  retract: NS_RETRACT,
  retractV0: NS_RETRACT_V0,
  fasten: NS_FASTEN,
  fallback: "urn:xmpp:fallback:0",
  hints: NS.hints,
  reference: "urn:xmpp:reference:0",
  oob: "jabber:x:oob",
  csi: "urn:xmpp:csi:0",
  muc: NS.muc,
  mucUser: NS.mucUser,
  mucAdmin: NS.mucAdmin,
  mucOwner: NS.mucOwner,
  dataForms: NS.dataForms,
  conference: NS.conference,
  ping: NS.ping,
} as const;

const CONTENT_NAMES: Record<number, string> = {
  [ContentType.TEXT]: "text", [ContentType.IMAGE]: "image", [ContentType.AUDIO]: "audio", [ContentType.VIDEO]: "video",
  [ContentType.FILE]: "file", [ContentType.LOCATION]: "location", [ContentType.CUSTOM]: "custom",
};
const CONTENT_BY_NAME = new Map(Object.entries(CONTENT_NAMES).map(([k, v]) => [v, Number(k) as ContentType]));
const MEDIA = new Set<number>([ContentType.IMAGE, ContentType.AUDIO, ContentType.VIDEO, ContentType.FILE]);

export { isRetractionXml, messageIdOf, retractTarget, storedMessageId };

export const RETRACT_FALLBACK = "This person attempted to retract a previous message, but it's unsupported by your client.";

/** The <message type="chat"> (or groupchat) for a mobile SendMessage. */
export function chatStanza(req: SendMessage, to: string, type: "chat" | "groupchat"): Element {
  const id = req.clientMsgId;
  const el = xml("message", { type, to, id });
  if (req.body !== "") el.cnode(xml("body", null, req.body));
  el.cnode(xml("origin-id", { xmlns: NS.sid, id }));
  if (type === "chat") {
    el.cnode(xml("request", { xmlns: MNS.receipts }));
    el.cnode(xml("markable", { xmlns: MNS.markers }));
  }
  if (req.contentType !== ContentType.TEXT || req.searchableText !== "" || req.payload.length > 0) {
    const content = xml("content", { xmlns: MNS.content, type: CONTENT_NAMES[req.contentType] ?? "custom" });
    if (req.searchableText !== "") content.cnode(xml("search", null, req.searchableText));
    if (req.payload.length > 0) content.cnode(xml("payload", null, Buffer.from(req.payload).toString("base64")));
    el.cnode(content);
  }
  for (const m of req.mentions) el.cnode(xml("reference", { xmlns: MNS.reference, type: "mention", uri: `xmpp:${m}` }));
  if (MEDIA.has(req.contentType) && /^https?:\/\/\S+$/.test(req.body)) {
    el.cnode(xml("x", { xmlns: MNS.oob }, xml("url", null, req.body)));
  }
  // A message without a body is still a message here (e.g. CUSTOM with a payload): keep it (XEP-0334).
  if (req.body === "") el.cnode(xml("store", { xmlns: MNS.hints }));
  return el;
}

/** XEP-0424 retraction of the message whose origin-id is `targetId`. */
export function retractionStanza(to: string, type: "chat" | "groupchat", targetId: string, id: string): Element {
  return xml("message", { type, to, id },
    xml("retract", { xmlns: MNS.retract, id: targetId }),
    xml("fallback", { xmlns: MNS.fallback, for: MNS.retract }),
    xml("body", null, RETRACT_FALLBACK),
    xml("origin-id", { xmlns: NS.sid, id }),
    xml("store", { xmlns: MNS.hints }));
}

export interface RowContext {
  seq: number;
  stanzaId: string;
  ts: number;
  /** The conversation: the peer's bare JID, or the group JID. */
  conversation: string;
  type: ConversationType;
  outgoing: boolean;
  /** The sender's bare JID (or the room occupant JID in anonymous groups). */
  from: string;
}

/** A mobile Message from a stanza. */
export function messageFromStanza(el: Element, ctx: RowContext): Message {
  const content = el.getChild("content", MNS.content);
  const payloadText = content?.getChildText("payload");
  const mentions: string[] = [];
  for (const r of el.getChildren("reference", MNS.reference)) {
    if (r.attrs.type === "mention" && r.attrs.uri?.startsWith("xmpp:")) mentions.push(r.attrs.uri.slice(5));
  }
  let contentType: ContentType = ContentType.TEXT;
  if (content) contentType = CONTENT_BY_NAME.get(content.attrs.type ?? "") ?? ContentType.CUSTOM;
  else if (el.getChild("x", MNS.oob)) contentType = ContentType.FILE;
  const target = retractTarget(el);
  return {
    seq: ctx.seq,
    serverMsgId: ctx.stanzaId,
    clientMsgId: messageIdOf(el),
    conversation: ctx.conversation,
    conversationType: ctx.type,
    from: ctx.from,
    outgoing: ctx.outgoing,
    serverTime: ctx.ts,
    contentType,
    body: target !== null ? "" : el.getChildText("body") ?? "",
    mentions,
    searchableText: content?.getChildText("search") ?? "",
    payload: payloadText ? Buffer.from(payloadText, "base64") : EMPTY,
    kind: target !== null ? MessageKind.RECALL : MessageKind.NORMAL,
    recalled: false,
    recallTargetSeq: 0,
    recallTargetClientMsgId: target ?? "",
    receiptRequested: !ctx.outgoing && el.getChild("request", MNS.receipts) !== undefined,
  };
}

const EMPTY = new Uint8Array(0);

/** A Message from one of the user's timeline rows (1:1 conversations), or null if the row is damaged. */
export function messageFromRow(row: TimelineEntry): Message | null {
  let el: Element;
  try {
    el = parseFramedElement(row.xml);
  } catch {
    return null;
  }
  const from = row.outgoing ? row.owner : row.peer;
  return messageFromStanza(el, { seq: row.seq, stanzaId: row.stanzaId, ts: row.ts, conversation: row.peer, type: ConversationType.DIRECT, outgoing: row.outgoing, from });
}

/** Makes `m` a tombstone: what a recalled message looks like in history. */
export function tombstone(m: Message): Message {
  m.recalled = true;
  m.body = "";
  m.payload = EMPTY;
  m.mentions = [];
  m.searchableText = "";
  return m;
}

// ---- presence ----

const SHOWS: Record<string, Show> = { away: Show.AWAY, chat: Show.CHAT, dnd: Show.DND, xa: Show.XA };
const SHOW_NAMES: Record<number, string | undefined> = { [Show.AWAY]: "away", [Show.CHAT]: "chat", [Show.DND]: "dnd", [Show.XA]: "xa" };

export function presenceFromStanza(el: Element): Presence {
  const from = el.attrs.from ?? "";
  const resource = tryParseJid(from)?.resource ?? "";
  const prio = Number(el.getChildText("priority") ?? "0");
  return {
    jid: from,
    available: el.attrs.type === undefined,
    show: SHOWS[el.getChildText("show") ?? ""] ?? Show.AVAILABLE,
    status: el.getChildText("status") ?? "",
    priority: Number.isInteger(prio) ? prio : 0,
    mobile: resource.startsWith("mobile-"),
    // XEP-0153: the photo hash the client (or the server's avatar conversion) put into the presence.
    avatarHash: el.getChild("x", "vcard-temp:x:update")?.getChildText("photo")?.trim() ?? "",
  };
}

export function presenceStanza(show: Show, status: string, priority = 0): Element {
  const name = SHOW_NAMES[show];
  return xml("presence", null,
    name ? xml("show", null, name) : null,
    status !== "" ? xml("status", null, status) : null,
    xml("priority", null, String(priority)));
}

// ---- roster ----

const SUBSCRIPTIONS: Record<string, Subscription> = { none: Subscription.NONE, to: Subscription.TO, from: Subscription.FROM, both: Subscription.BOTH };

export function contactFromItem(item: RosterItem, removed = false): Contact {
  let requestMessage = "";
  if (item.pendingIn) {
    try { requestMessage = parseFramedElement(item.pendingIn).getChildText("status") ?? ""; } catch { /* a damaged row */ }
  }
  return {
    jid: item.jid,
    remark: item.name ?? "",
    groups: [...item.groups],
    subscription: SUBSCRIPTIONS[item.subscription] ?? Subscription.NONE,
    pendingOut: item.askOut,
    pendingIn: item.pendingIn !== null,
    requestMessage,
    preApproved: item.approved,
    inRoster: item.inRoster,
    removed,
    blocked: false,
  };
}

/** A Contact from a roster push's <item/>. */
export function contactFromItemElement(item: Element): Contact {
  const sub = item.attrs.subscription ?? "none";
  return {
    jid: item.attrs.jid ?? "",
    remark: item.attrs.name ?? "",
    groups: item.getChildren("group").map((g) => g.getText()),
    subscription: SUBSCRIPTIONS[sub] ?? Subscription.NONE,
    pendingOut: item.attrs.ask === "subscribe",
    pendingIn: false,
    requestMessage: "",
    preApproved: item.attrs.approved === "true",
    inRoster: sub !== "remove",
    removed: sub === "remove",
    blocked: false,
  };
}
