// Contacts are the RFC 6121 roster and subscriptions; presence is XMPP presence. Every operation is
// the roster iq or presence stanza an XMPP client would send, so both protocols see the same state.
import { createHash } from "node:crypto";
import { xml } from "../../xml/element.js";
import { NS } from "../../xml/ns.js";
import type { RosterItem } from "../../storage/types.js";
import {
  Show,
  type AcceptContact, type AddContact, type Avatar, type GetAvatar, type BlockContact, type Contact, type DeleteContact, type GetPresence, type GetRoster,
  type Ok, type Presence, type PresenceList, type RejectContact, type Roster, type SetPresence, type SetRemark, type UnblockContact,
} from "../schema.js";
import { forbidden, invalid, notFound } from "../errors.js";
import { contactFromItem, presenceFromStanza, presenceStanza } from "../bridge.js";
import { MobileSession } from "../session.js";
import { bareJid, text } from "./validate.js";

const MAX_NAME = 1024;
const MAX_GROUPS = 64;

function contactJid(s: MobileSession, value: string): string {
  const j = bareJid(s, value, "jid").toString();
  if (j === s.owner) throw invalid("jid: that is you");
  return j;
}

function groupsField(groups: string[]): string[] {
  if (groups.length > MAX_GROUPS) throw invalid(`groups: at most ${MAX_GROUPS}`);
  for (const g of groups) if (g === "") throw invalid("groups: empty group name");
  groups.forEach((g, i) => text(g, `groups[${i}]`, MAX_NAME));
  if (new Set(groups).size !== groups.length) throw invalid("groups: duplicate group");
  return groups;
}

async function rosterSet(s: MobileSession, jid: string, name: string | null, groups: string[]): Promise<void> {
  const item = xml("item", { jid, name: name ?? undefined }, ...groups.map((g) => xml("group", null, g)));
  MobileSession.checkIq(await s.iq(xml("iq", { type: "set" }, xml("query", { xmlns: NS.roster }, item))), "roster update failed");
}

const subscription = (s: MobileSession, to: string, type: string, status?: string) =>
  s.route(xml("presence", { to, type }, status ? xml("status", null, status) : null));

export async function getRoster(s: MobileSession, req: GetRoster): Promise<Roster> {
  const owner = s.owner;
  s.interested = true;
  const roster = await s.ctx.api.store.roster.get(owner);
  const blocked = new Set(await s.ctx.blocking.list(owner));
  if (req.sinceVersion !== 0 && req.sinceVersion === roster.version) return { version: roster.version, unchanged: true, contacts: [], blocked: [] };
  const contacts = roster.items.filter((i) => i.inRoster || i.pendingIn !== null).map((i) => withBlocked(contactFromItem(i), blocked));
  return { version: roster.version, unchanged: false, contacts, blocked: [...blocked].sort() };
}

function withBlocked(c: Contact, blocked: ReadonlySet<string>): Contact {
  c.blocked = blocked.has(c.jid);
  return c;
}

export async function addContact(s: MobileSession, req: AddContact): Promise<Ok> {
  const jid = contactJid(s, req.jid);
  text(req.remark, "remark", MAX_NAME);
  text(req.message, "message", MAX_NAME);
  const groups = groupsField(req.groups);
  await rosterSet(s, jid, req.remark === "" ? null : req.remark, groups);
  // A friend request: ask to see their presence, and accept theirs in advance (RFC 6121 §3.4), so
  // both are friends when they accept, or when they add the user too.
  await subscription(s, jid, "subscribe", req.message);
  await subscription(s, jid, "subscribed");
  return {};
}

export async function acceptContact(s: MobileSession, req: AcceptContact): Promise<Ok> {
  const jid = contactJid(s, req.jid);
  text(req.remark, "remark", MAX_NAME);
  const item = await s.ctx.api.store.roster.getItem(s.owner, jid);
  if (!item?.pendingIn) throw notFound(`no contact request from ${jid}`);
  if (req.remark !== "" || !item.inRoster) await rosterSet(s, jid, req.remark !== "" ? req.remark : item.name, item.groups);
  await subscription(s, jid, "subscribed");
  if (item.subscription !== "to" && item.subscription !== "both" && !item.askOut) await subscription(s, jid, "subscribe");
  return {};
}

export async function rejectContact(s: MobileSession, req: RejectContact): Promise<Ok> {
  const jid = contactJid(s, req.jid);
  const item = await s.ctx.api.store.roster.getItem(s.owner, jid);
  if (!item || (!item.pendingIn && !item.approved && item.subscription !== "from" && item.subscription !== "both")) {
    throw notFound(`no contact request from ${jid}`);
  }
  await subscription(s, jid, "unsubscribed");
  return {};
}

export async function deleteContact(s: MobileSession, req: DeleteContact): Promise<Ok> {
  const jid = contactJid(s, req.jid);
  const answer = await s.iq(xml("iq", { type: "set" }, xml("query", { xmlns: NS.roster }, xml("item", { jid, subscription: "remove" }))));
  MobileSession.checkIq(answer, `${jid} is not a contact`);
  return {};
}

export async function setRemark(s: MobileSession, req: SetRemark): Promise<Ok> {
  const jid = contactJid(s, req.jid);
  text(req.remark, "remark", MAX_NAME);
  const item = await s.ctx.api.store.roster.getItem(s.owner, jid);
  if (!item?.inRoster) throw notFound(`${jid} is not a contact`);
  await rosterSet(s, jid, req.remark === "" ? null : req.remark, req.setGroups ? groupsField(req.groups) : item.groups);
  return {};
}

export async function blockContact(s: MobileSession, req: BlockContact): Promise<Ok> {
  await s.ctx.blocking.block(s.owner, [contactJid(s, req.jid)], s);
  return {};
}

export async function unblockContact(s: MobileSession, req: UnblockContact): Promise<Ok> {
  await s.ctx.blocking.unblock(s.owner, [contactJid(s, req.jid)], s);
  return {};
}

export async function setPresence(s: MobileSession, req: SetPresence): Promise<Ok> {
  if (!Number.isInteger(req.show) || req.show < Show.AVAILABLE || req.show > Show.XA) throw invalid("show: unknown value");
  text(req.status, "status", MAX_NAME);
  await s.route(presenceStanza(req.show, req.status, s.priority));
  return {};
}

export async function getPresence(s: MobileSession, req: GetPresence): Promise<PresenceList> {
  const owner = s.owner;
  const roster = await s.ctx.api.store.roster.get(owner);
  const byJid = new Map(roster.items.map((i) => [i.jid, i]));
  const visible = (i: RosterItem | undefined) => i !== undefined && (i.subscription === "to" || i.subscription === "both");
  let jids: string[];
  if (req.jids.length === 0) jids = roster.items.filter(visible).map((i) => i.jid);
  else {
    if (req.jids.length > 1000) throw invalid("jids: at most 1000");
    jids = req.jids.map((j, i) => bareJid(s, j, `jids[${i}]`).toString());
    // RFC 6121 §4: presence is shown only to contacts with a subscription (and to the user).
    for (const j of jids) if (j !== owner && !visible(byJid.get(j))) throw forbidden(`no subscription to ${j}'s presence`);
  }
  const presences: Presence[] = [];
  for (const j of jids) {
    for (const r of s.ctx.api.sessions.resources(j)) {
      if (r.presence === null || r.jid === null) continue;
      presences.push({ ...presenceFromStanza(r.presence), jid: r.jid.toString() });
    }
  }
  return { presences };
}


/** A user's avatar: the vCard PHOTO, which the avatar module keeps equal to the XEP-0084 avatar. */
export async function getAvatar(s: MobileSession, req: GetAvatar): Promise<Avatar> {
  const jid = req.jid === "" ? s.owner : bareJid(s, req.jid, "jid").toString();
  const vcards = s.ctx.api.useOptional("vcards");
  const photo = (await vcards?.get(jid))?.getChild("PHOTO");
  const data = Buffer.from(photo?.getChildText("BINVAL")?.replace(/\s+/g, "") ?? "", "base64");
  if (!photo || data.length === 0) throw notFound(`${jid} has no avatar`);
  return { jid, hash: createHash("sha1").update(data).digest("hex"), type: photo.getChildText("TYPE") ?? "image/png", data };
}
