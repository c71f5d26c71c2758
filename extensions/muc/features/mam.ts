// XEP-0313 MUC archives: the room answers MAM queries to its bare JID from its timeline, where every
// groupchat message with a body is written once (service.ts), with the stanza-id the room gave it live
// (stanza-id.ts) as its archive id. Filters, RSM pages and the results are the user archive's
// (extensions/mam/archive.ts); this file decides who may ask, what `with` means in a room, and what the
// requester may see of the senders.
//
// Who may query (XEP-0313 §6.1.2: whoever may enter the room at the time of the query): in an open room
// anyone but outcasts, occupants or not; in a members-only room members, admins and owners; in a
// password-protected room its occupants and members. A locked room does not exist for anyone but its
// owner (item-not-found), and a room configured without `mam` or without logging (muc#roomconfig_enablelogging,
// history.ts) keeps no archive (service-unavailable).
//
// Anonymity: a result shows the sender's real (bare) JID, in the muc#user <x/> of XEP-0313 §6.1.2, only to
// a requester who would see it live (whois: everyone in non-anonymous rooms, moderators in semi-anonymous
// ones). `with` is an occupant JID (room@service/nick: what that nick sent) or, for the same requesters
// only, a real JID (what that user sent, under any nick; the room keeps bare JIDs, so a resource is ignored).
import { xml, type Element } from "../../../src/xml/element.js";
import { NS } from "../../../src/xml/ns.js";
import { tryParseJid, type Jid } from "../../../src/jid/jid.js";
import { parseFramedElement } from "../../../src/xml/parser.js";
import { StanzaError } from "../../../src/xml/stanza.js";
import { readModuleOptions } from "../../../src/config/config.js";
import { mamOptions } from "../../mam/index.js";
import { archiveMetadata, queryArchive, sendPage, type Archive, type PageLimits, type WithFilter } from "../../mam/archive.js";
import { parseQuery, queryForm } from "../../mam/query.js";
import { booleanField } from "../config-fields.js";
import { affiliationRank, roleRank, type Role, type Room } from "../room.js";
import type { MucService } from "../service.js";

export function mam(muc: MucService): void {
  const { api } = muc;
  // `modules.disabled: [mam]` turns MAM off everywhere, rooms included; page limits are the mam module's.
  if (api.config.modules.disabled.includes("mam")) return;
  const limits = pageLimits(api.config.modules.mam);

  muc.addConfigField(booleanField("mam", "Keep a message archive (XEP-0313 MAM) of the room?", "mam"));
  muc.bus.fold("room-disco-features", (features, { room }) => {
    if (room.config.mam && room.config.logging) features.push(NS.mam, NS.mamExtended, NS.fulltext);
    return features;
  });

  const archiveOf = (room: Room): Archive => ({ timeline: api.store.timeline, jid: room.bare, floor: room.floor });

  /** Refuses a requester who may not read the archive; answers whether it sees the senders' real JIDs. */
  const access = (room: Room, from: Jid): boolean => {
    const bare = from.bareString();
    const affiliation = room.affiliationOf(bare);
    if (room.locked && affiliation !== "owner") throw new StanzaError("item-not-found", "no such room");
    if (!room.config.mam || !room.config.logging) throw new StanzaError("service-unavailable", "this room keeps no message archive");
    if (affiliation === "outcast") throw new StanzaError("forbidden", "you are banned from this room");
    const member = affiliationRank(affiliation) >= affiliationRank("member");
    if (room.config.membersOnly && !member) throw new StanzaError("forbidden", "the archive of a members-only room is for its members");
    const inRoom = room.occupantsOf(bare);
    if (room.config.passwordProtected && !member && inRoom.length === 0) {
      throw new StanzaError("forbidden", "the archive of a password-protected room is for its occupants and members");
    }
    // The role it has in the room, or would have on entering.
    let role: Role = inRoom.length === 0 ? muc.defaultRole(room, affiliation) : "none";
    for (const occ of inRoom) if (roleRank(occ.role) > roleRank(role)) role = occ.role;
    if (role === "none") throw new StanzaError("forbidden", "you may not enter this room");
    return muc.jidVisibleTo(room, role);
  };

  /** XEP-0313 §4.1.1 in a room: an occupant JID or, for those who may know it, a real JID. */
  const withFilter = (room: Room, w: Jid | null, seesJids: boolean): WithFilter => {
    if (w === null) return {};
    if (w.bareString() === room.bare) {
      if (w.resource === "") return {}; // every message in the archive comes from an occupant JID of the room
      return { match: (entry) => tryParseJid(fromOf(entry.xml))?.equals(w) === true };
    }
    if (!seesJids) throw new StanzaError("forbidden", "this room does not disclose real JIDs to you; filter by occupant JID (room@service/nick)");
    return { peer: w.bareString() };
  };

  /** XEP-0313 §6.1.2: no `to`; the sender's real JID for those who may see it, and no other muc#user <x/>. */
  const present = (stored: Element, peer: string, seesJids: boolean): Element => {
    delete stored.attrs.to;
    stored.children = stored.children.filter((c) => typeof c === "string" || !(c.name === "x" && c.attrs.xmlns === NS.mucUser));
    if (seesJids) stored.cnode(xml("x", { xmlns: NS.mucUser }, xml("item", { jid: peer })));
    return stored;
  };

  muc.onRoomIq("set", NS.mam, "query", async (room, ev) => {
    const seesJids = access(room, ev.from);
    const q = parseQuery(ev.stanza.getChild("query", NS.mam)!);
    const page = await queryArchive(archiveOf(room), q, withFilter(room, q.with, seesJids), limits);
    return sendPage(api, ev, room.bare, q, page, (stored, entry) => present(stored, entry.peer, seesJids));
  });
  muc.onRoomIq("get", NS.mam, "query", (room, ev) => {
    access(room, ev.from);
    return xml("query", { xmlns: NS.mam }, queryForm());
  });
  muc.onRoomIq("get", NS.mam, "metadata", (room, ev) => {
    access(room, ev.from);
    return archiveMetadata(archiveOf(room));
  });
}

/** The mam module's page limits; bad options are its to report when it starts (the server then stops). */
function pageLimits(raw: unknown): PageLimits {
  try {
    return readModuleOptions({ name: "mam", options: mamOptions }, raw);
  } catch {
    return readModuleOptions({ name: "mam", options: mamOptions }, {});
  }
}

/** The `from` of a stored stanza. */
function fromOf(stored: string): string | undefined {
  try { return parseFramedElement(stored).attrs.from; } catch { return undefined; }
}
